import { createHash } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { LineShell } from '../platform/line-shell.js';
import { LONG_PAGE_HEADER_BYTES } from '../postgres/wal-headers.js';
import { freeBytes, removeFile } from './spool.js';
import type { ReadWalFile } from './wal-read.js';

/**
 * One `sh` for the life of a pusher worker that, for each segment, has zstd compress a file into
 * another and cksum read the same file: `zstd` and `cksum` are started from that small shell, not
 * from Node, whose every start of a child forks its whole address space. A line each in (the
 * level, the file, the output), a line out: `ok CRC SIZE`, `nocheck`, or `fail` (zstd failed).
 *
 * zstd reads, compresses and writes in one thread (`--no-asyncio`, where its version has it,
 * asked once per shell), as the prefetcher's decoder does: its asynchronous I/O hands every block
 * to another thread and back with futex wake-ups: a 16 MiB segment of pgbench WAL took about 20
 * ms of CPU to compress into a file with it, 13.5 without (perf stat, medians of 40 runs, rounds
 * interleaved), on cores the server under a burst leaves no second one of.
 */
const SCRIPT = `z=
zstd --no-asyncio -V >/dev/null 2>&1 && z=--no-asyncio
while IFS= read -r level && IFS= read -r src && IFS= read -r out; do
  if zstd "-$level" --single-thread $z -q -c --no-sparse -- "$src" >"$out" 2>/dev/null; then
    set -- $(cksum <"$src" 2>/dev/null)
    if [ "$#" -eq 2 ]; then echo "ok $1 $2"; else echo nocheck; fi
  else
    echo fail
  fi
done`;

/**
 * How long the idle shell may take per 16 MiB of a segment (1 s at least) before it is taken for
 * starved: zstd and cksum need about 30 ms for that beside a busy server.
 */
const IDLE_DEADLINE_MS_PER_16_MIB = 1_000;

/** What a copy may leave of the file system's free space at least: it never takes pg_wal's last room. */
const KEEP_FREE_BYTES = 1024 ** 3;

/** Names of the encoder's temporary files, which a pusher that died leaves (see isEncoderDebris). */
const COPY_SUFFIX = '.copy';
const COMPRESSED_SUFFIX = '.copy.zst';

/** Whether `name` is a temporary file of an encoder (removed by the next pusher). */
export function isEncoderDebris(name: string): boolean {
  return name.startsWith('.') && (name.endsWith(COPY_SUFFIX) || name.endsWith(COMPRESSED_SUFFIX));
}

/** Tells apart the copies of the encoders of one pusher (a worker each). */
let encoders = 0;

/**
 * Reads WAL segments for the pusher (lib/wal/push-ahead.ts) from a private copy: this process
 * reads the segment once, hashing each chunk as it writes it into the copy, a file of this
 * encoder's own in `dir`, and then zstd and cksum read the copy from the shell above. Nothing but
 * this encoder writes the copy, so the digest, the system identifier read from the first bytes,
 * the compressed object and the launcher's CRC are all of the very same bytes, as with one read
 * through pipes (lib/wal/wal-read.ts), at about three quarters of the CPU: a pipe moves a segment
 * 64 KiB at a time, with a wake-up of each side for each, and the pusher fed two of them per
 * segment beside the server it runs with.
 *
 * The copy is the same file for every segment, written over (and cut to the segment's size), not
 * a new one each time: a new file's pages are allocated, filled and freed again for each segment,
 * which cost more CPU than hashing it. A 16 MiB segment's copy and digest took 19.2-20.4 ms of
 * CPU as a kernel copy into a new file hashed after (and removed), 14.1-14.7 ms this way (medians
 * of 40, interleaved). The copy lives as long as the encoder; a pusher that died leaves it, and
 * the next removes it (isEncoderDebris).
 *
 * The shell runs under SCHED_IDLE (`chrt --idle`) where it can: a task of the server's that wakes
 * takes the core from it at once, where one at the pusher's niceness waits for its slice to end
 * (bench:wal's burst, three loads each: 3.77-3.90 s with it, 3.91-3.98 s without, cp 3.51-3.53 s).
 * A host whose cores are busy all the time gives it none: an answer later than its deadline ends
 * that shell, and the segment and every later one are encoded by a shell at the pusher's own
 * niceness, as PostgreSQL's archiver waits for them.
 */
export class SegmentEncoder {
  private readonly env: NodeJS.ProcessEnv;
  private readonly dir: string;
  private shell: LineShell | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** The copy's path (without suffix: see COPY_SUFFIX) and, once made, its descriptor. */
  private readonly id: string;
  private copy: number | undefined;
  /** Whether the copy holds a segment's bytes (see emptyCopy). */
  private filled = false;
  /** Whether the shell is (still) to run under SCHED_IDLE. */
  private idle = true;

  /** `dir`: a folder of the caller's own, on the file system of the segments (pg_wal). */
  constructor(env: NodeJS.ProcessEnv, dir: string) {
    this.env = env;
    this.dir = dir;
    this.id = join(dir, `.encoder.${process.pid}.${++encoders}`);
  }

  /**
   * The file at `path` read as readWalFile reads it (with its `check`, or none when cksum could
   * not say), or undefined when there is no room for the copy (the caller reads it through pipes
   * then). Throws when the file cannot be read or zstd fails; one call at a time.
   */
  read(path: string, level: number): Promise<ReadWalFile | undefined> {
    const run = this.queue.then(() => this.readNow(path, level));
    this.queue = run.catch(() => {});
    return run;
  }

  private async readNow(path: string, level: number): Promise<ReadWalFile | undefined> {
    const copy = `${this.id}${COPY_SUFFIX}`;
    const compressed = `${this.id}${COMPRESSED_SUFFIX}`;
    // A name the line protocol cannot carry is never passed: a newline would split it.
    if (copy.includes('\n')) throw new Error('a path with a newline');
    const fd = openSync(path, 'r');
    let digest: Pick<ReadWalFile, 'bytes' | 'sha256' | 'head'>;
    try {
      const { size } = fstatSync(fd);
      // The copy of the segment before is there already: room for this one is what it lacks of it.
      const held = this.copy === undefined ? 0 : fstatSync(this.copy).size;
      if (freeBytes(this.dir) < size - held + KEEP_FREE_BYTES) return undefined;
      this.copy ??= openSync(copy, 'w', 0o600);
      this.filled = true;
      digest = await copyAndDigest(fd, this.copy);
    } finally {
      closeSync(fd);
    }
    try {
      const request = `${level}\n${copy}\n${compressed}\n`;
      const deadline = Math.max(1, digest.bytes / 2 ** 24) * IDLE_DEADLINE_MS_PER_16_MIB;
      const line = await this.answer(request, deadline);
      if (line === undefined) throw new Error('the encoding shell has exited');
      if (line === 'fail') throw new Error(`zstd could not compress ${path}`);
      const ok = /^ok ([0-9]{1,10}) ([0-9]{1,12})$/.exec(line);
      const check = ok && Number(ok[2]) === digest.bytes ? `${ok[1]}-${ok[2]}` : undefined;
      // Blocking, as the copy: through libuv's threads a read of this ~0.5 MB file cost 296 us
      // of CPU here, 87 us blocking (medians of 7 rounds of 200).
      return { ...digest, compressed: readFileSync(compressed), ...(check ? { check } : {}) };
    } finally {
      removeFile(compressed);
    }
  }

  /**
   * The shell's answer to `request`; asked again of a shell at the pusher's niceness when the
   * idle one misses `deadline` or is gone (no chrt here, or the policy refused).
   */
  private async answer(request: string, deadline: number): Promise<string | undefined> {
    if (!this.idle) return this.ask(request);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), deadline);
    });
    const answered = this.ask(request);
    const first = await Promise.race([answered, late]).finally(() => clearTimeout(timer));
    if (first !== 'late' && first !== undefined) return first;
    // Starved, or gone (no chrt here, or the policy refused): a shell at the pusher's niceness.
    this.idle = false;
    const starved = this.shell;
    this.shell = undefined;
    await starved?.kill();
    return this.ask(request);
  }

  private ask(request: string): Promise<string | undefined> {
    return this.started().ask(request);
  }

  private started(): LineShell {
    if (this.shell) return this.shell;
    // /bin/sh by its path: zstd and cksum are looked up in the caller's PATH, the shell is not.
    const [command, args] = this.idle
      ? ['chrt', ['--idle', '0', '/bin/sh', '-c', SCRIPT]]
      : ['/bin/sh', ['-c', SCRIPT]];
    this.shell = new LineShell(command, args, { env: this.env, tool: 'sh (zstd, cksum)' });
    return this.shell;
  }

  /**
   * Empties the copy while there is nothing to read. Its pages are dirty in the page cache, and a
   * file kept dirty longer than the kernel's writeback delay (30 s by default) is written out to
   * disk: a pusher that stays up under steady traffic would write 16 MiB beside pg_wal for every
   * such delay, for a copy nobody needs. Cut to nothing, its pages are dropped unwritten; a burst
   * still writes over the same file segment after segment (the reuse is what saves the CPU).
   */
  emptyCopy(): void {
    if (this.copy === undefined || !this.filled) return;
    ftruncateSync(this.copy, 0);
    this.filled = false;
  }

  /** Ends the shell (its input closed) and removes the copy; resolves once the shell has exited. */
  async close(): Promise<void> {
    await this.shell?.close();
    if (this.copy === undefined) return;
    closeSync(this.copy);
    this.copy = undefined;
    removeFile(`${this.id}${COPY_SUFFIX}`);
  }
}

/**
 * What a segment is read through: small enough to stay in the core's cache while hashed and
 * written, and to come from the heap. A buffer of 128 KiB or more is mapped memory of its own
 * (glibc's mmap threshold), which the kernel copies into several times slower on some hosts (see
 * spool-stored.ts). Shared by the workers: each slice's reads, hashes and writes happen with
 * nothing awaited.
 */
const CHUNK = Buffer.allocUnsafe(64 * 1024);

/** How much is read, hashed and copied before the pusher's other work may run. */
const SLICE_BYTES = 1 << 20;

/**
 * Copies the file open at `fd` into the file open at `copy` (from its start, cut to the same
 * size) and gives its size, SHA-256 and first bytes, by blocking reads and writes through one
 * small buffer, a slice of 1 MiB at a time: an asynchronous read is made on another thread, whose
 * bytes then come back to this one's cache to be hashed (a 16 MiB segment's digest alone took
 * 13.3-17.9 ms of CPU through a 1 MiB buffer and asynchronous reads, 12.0-12.5 ms this way,
 * medians of 40). Between slices (about 1 ms each) the other workers run: one that has stored its
 * segment writes its record at once, and PostgreSQL's archiver, which waits for that record, is
 * not held up for a whole segment.
 */
async function copyAndDigest(
  fd: number,
  copy: number,
): Promise<Pick<ReadWalFile, 'bytes' | 'sha256' | 'head'>> {
  const hash = createHash('sha256');
  let head: Buffer | undefined;
  let bytes = 0;
  for (let read = -1; read !== 0; ) {
    for (let slice = 0; slice < SLICE_BYTES; slice += read) {
      read = readSync(fd, CHUNK, 0, CHUNK.length, null);
      if (read === 0) break;
      const chunk = CHUNK.subarray(0, read);
      head ??= Buffer.from(chunk.subarray(0, LONG_PAGE_HEADER_BYTES));
      hash.update(chunk);
      for (let at = 0; at < read; ) at += writeSync(copy, chunk, at, read - at, bytes + at);
      bytes += read;
    }
    if (read !== 0) await setImmediate();
  }
  ftruncateSync(copy, bytes);
  return { bytes, sha256: hash.digest('hex'), head: head ?? Buffer.alloc(0) };
}
