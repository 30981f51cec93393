import { createHash } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describeExit, exitedCleanly } from '../platform/processes.js';
import { startZstd } from '../storage/zstd.js';
import { cksumOfFile } from './cksum.js';
import { entryName } from './spool.js';

/**
 * Spools an archived segment from its stored (compressed) bytes: zstd writes the segment straight
 * into the spool's temporary file, cksum reads that file, and the SHA-256 the archive recorded
 * is checked on the file's bytes before it is renamed to its entry. The segment's 16 MiB never
 * pass through a pipe to this process (which cost about as much CPU as the decompression itself,
 * competing with recovery for the host's cores), and what is checked is what the spool holds.
 * Throws (the temporary file removed) when zstd fails or the digest differs: the prefetcher
 * then leaves the segment to the checked fetch of lib/wal/fetch.ts.
 */
export async function spoolStored(
  dir: string,
  name: string,
  sha256: string,
  compressed: Uint8Array,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${name}.${process.pid}`);
  const fh = await open(temp, 'w', 0o600);
  try {
    const child = startZstd('decompress', { env, stdout: fh.fd });
    child.stdin?.end(compressed);
    const exit = await child.exited;
    if (!exitedCleanly(exit)) throw new Error(`zstd: ${describeExit(exit)}`);
    await fh.close();
    // The CRC first, the digest after: bytes that changed in between fail the digest, and any
    // change after both fails the launcher's CRC.
    const check = await cksumOfFile(temp, env);
    const actual = await sha256OfFile(temp);
    if (actual !== sha256)
      throw new Error(`${name}: its SHA-256 is ${actual}, the archive recorded ${sha256}`);
    await rename(temp, join(dir, entryName(name, sha256, check)));
  } catch (error) {
    await fh.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/** The SHA-256 of a file's bytes, read through one small buffer (no 16 MiB copy in memory). */
async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1 << 20);
  const fh = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
