import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { type Child, describeExit, exitedCleanly, startChild } from '../platform/processes.js';
import { LONG_PAGE_HEADER_BYTES } from '../postgres/wal-headers.js';
import { startZstd } from '../storage/zstd.js';

/** What one read of a WAL file gave: its size, digest and first bytes, and its compressed form. */
export interface ReadWalFile {
  readonly bytes: number;
  /** The SHA-256 of the original bytes. */
  readonly sha256: string;
  /** The file's first bytes (a segment's long page header), or all of a shorter file. */
  readonly head: Buffer;
  readonly compressed: Buffer;
  /** What coreutils `cksum` says of the same bytes (`<crc>-<size>`), when asked and cksum ran. */
  readonly check?: string;
}

/** What one read takes: large enough for few calls, small enough that memory stays flat. */
const CHUNK_BYTES = 1 << 20;

/**
 * Reads a WAL file once, through two buffers: each chunk is hashed and written to zstd (level
 * `level`, one thread) and, when `check` is asked, to cksum, so the digest, the compressed
 * object and the launcher's CRC are all of the very same bytes. The file never sits whole in
 * memory: a push used to read a segment into a 16 MiB buffer (twice for a push ahead), which cost
 * more CPU in page faults and copies than hashing it, taken from the server it runs beside.
 * Rejects when the file cannot be read or zstd fails; a cksum that fails only leaves `check` out.
 */
export async function readWalFile(
  path: string,
  options: { readonly level: number; readonly env: NodeJS.ProcessEnv; readonly check?: boolean },
): Promise<ReadWalFile> {
  const fh = await open(path, 'r');
  const zstd = startZstd({ level: options.level, threads: 1 }, { env: options.env });
  const crc = options.check ? startCksum(options.env) : undefined;
  const compressed: Buffer[] = [];
  zstd.stdout?.on('data', (c: Buffer) => compressed.push(c));
  const hash = createHash('sha256');
  const buffers = [Buffer.allocUnsafe(CHUNK_BYTES), Buffer.allocUnsafe(CHUNK_BYTES)];
  let head: Buffer | undefined;
  let total = 0;
  let cksumFailed = false;
  try {
    // The chunk written while the next is read: a buffer is read into again once its writes are done.
    let writing: Promise<void> = Promise.resolve();
    for (let i = 0; ; i++) {
      const buffer = buffers[i % 2] as Buffer;
      const { bytesRead } = await fh.read(buffer, 0, CHUNK_BYTES, null);
      await writing;
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      if (!head) head = Buffer.from(chunk.subarray(0, LONG_PAGE_HEADER_BYTES));
      hash.update(chunk);
      total += bytesRead;
      writing = Promise.all([
        write(zstd.stdin, chunk),
        crc && !cksumFailed
          ? write(crc.child.stdin, chunk).catch(() => {
              cksumFailed = true;
            })
          : undefined,
      ]).then(() => {});
      // Rejections surface at the next `await writing`; until then, none is unhandled.
      writing.catch(() => {});
    }
  } catch (error) {
    zstd.stop('SIGKILL');
    crc?.child.stop('SIGKILL');
    await Promise.all([zstd.exited, crc?.child.exited]);
    await fh.close().catch(() => {});
    const exit = await zstd.exited;
    throw exitedCleanly(exit) ? error : new Error(describeExit(exit), { cause: error });
  }
  await fh.close();
  zstd.stdin?.end();
  crc?.child.stdin?.end();
  const exit = await zstd.exited;
  if (!exitedCleanly(exit)) {
    crc?.child.stop('SIGKILL');
    throw new Error(describeExit(exit));
  }
  const check = crc && !cksumFailed ? await crc.result(total) : undefined;
  return {
    bytes: total,
    sha256: hash.digest('hex'),
    head: head ?? Buffer.alloc(0),
    compressed: Buffer.concat(compressed),
    ...(check ? { check } : {}),
  };
}

/** Writes a chunk to a child's stdin; resolves once the pipe has taken it (the buffer is free). */
function write(stream: Writable | null, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!stream) {
      reject(new Error('no pipe to the child'));
      return;
    }
    stream.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}

/** cksum reading its stdin: `result(size)` is its `<crc>-<size>`, when it agrees on the size. */
function startCksum(env: NodeJS.ProcessEnv): {
  child: Child;
  result: (size: number) => Promise<string | undefined>;
} {
  const child = startChild('cksum', [], { env, stdin: 'pipe', stdout: 'pipe' });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  return {
    child,
    result: async (size) => {
      const exit = await child.exited;
      const m = /^([0-9]{1,10}) ([0-9]{1,12})\n$/.exec(out);
      return exitedCleanly(exit) && m && Number(m[2]) === size ? `${m[1]}-${m[2]}` : undefined;
    },
  };
}
