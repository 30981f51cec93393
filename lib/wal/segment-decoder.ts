import { LineShell } from '../platform/line-shell.js';

/**
 * What a decoder made of one stored segment: its `cksum` (`<crc>-<size>`, the launcher's check),
 * or `undefined` when cksum could not say (the launcher then leaves the segment to the CLI).
 */
export type Decoded = { readonly check: string | undefined };

/**
 * One `sh` for the life of a prefetch worker that, for each stored segment, has zstd decompress
 * a file into another and cksum read the result: `zstd` and `cksum` are started from that small
 * shell, not from Node, whose every start of a child (a fork of its whole address space) cost
 * more CPU than cksum itself, twice per segment, taken from the recovery it runs beside. A line
 * in (the compressed file, the output), a line out: `ok CRC SIZE`, `nocheck`, or `fail` (zstd
 * failed: the caller reads the segment again through the checked fetch).
 *
 * zstd does not verify its frame's own checksum (XXH64) here: the caller hashes the very file it
 * wrote and compares the SHA-256 the archive recorded, a stronger check of the same bytes, before
 * the segment is spooled. Skipping it saves a quarter of the decompression's CPU (16 MiB: 9.1
 * against 12.5 ms here), beside the recovery on the same cores.
 *
 * zstd decodes and writes in one thread (`--no-asyncio`, where its version has it, asked once per
 * shell): its asynchronous output hands every block to a second thread and back, some 400 futex
 * calls a segment, about 2-6 ms of CPU of the ~20 that decoding one into a file takes, on cores
 * where recovery leaves no second one.
 */
const SCRIPT = `z=
zstd --no-asyncio -V >/dev/null 2>&1 && z=--no-asyncio
while IFS= read -r src && IFS= read -r out; do
  if zstd -d -q --no-check $z -c -- "$src" >"$out" 2>/dev/null; then
    set -- $(cksum <"$out" 2>/dev/null)
    if [ "$#" -eq 2 ]; then echo "ok $1 $2"; else echo nocheck; fi
  else
    echo fail
  fi
done`;

export class SegmentDecoder {
  private readonly shell: LineShell;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(env: NodeJS.ProcessEnv) {
    this.shell = new LineShell('sh', ['-c', SCRIPT], { env, tool: 'sh (zstd, cksum)' });
  }

  /**
   * Decompresses the zstd file `src` into `out` (created or truncated) and cksums `out`. Throws
   * when zstd fails, or the shell cannot be started or has gone; one call at a time.
   */
  decode(src: string, out: string): Promise<Decoded> {
    const run = this.queue.then(() => this.decodeNow(src, out));
    this.queue = run.catch(() => {});
    return run;
  }

  private async decodeNow(src: string, out: string): Promise<Decoded> {
    // A name the line protocol cannot carry is never passed: a newline would split it.
    if (src.includes('\n') || out.includes('\n')) throw new Error('a path with a newline');
    const line = await this.shell.ask(`${src}\n${out}\n`);
    if (line === undefined) throw new Error(`the decoding shell has exited`);
    const ok = /^ok ([0-9]{1,10}) ([0-9]{1,12})$/.exec(line);
    if (ok) return { check: `${ok[1]}-${ok[2]}` };
    if (line === 'nocheck') return { check: undefined };
    throw new Error(`zstd could not decompress ${src}`);
  }

  /** Ends the shell (its input closed); resolves once it has exited. */
  close(): Promise<void> {
    return this.shell.close();
  }
}
