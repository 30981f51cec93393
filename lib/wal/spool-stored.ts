import { createHash } from 'node:crypto';
import { mkdir, open, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SegmentDecoder } from './segment-decoder.js';
import { entryName } from './spool.js';

/**
 * Spools an archived segment from its stored (compressed) bytes: written to a temporary file, the
 * decoder's zstd writes the segment from it straight into the spool's temporary file and its
 * cksum reads that file, and the SHA-256 the archive recorded is checked on the file's bytes
 * before it is renamed to its entry. The segment's 16 MiB never pass through a pipe to this
 * process (which cost about as much CPU as the decompression itself, competing with recovery for
 * the host's cores), and what is checked is what the spool holds. Throws (the temporary files
 * removed) when zstd fails or the digest differs: the prefetcher then leaves the segment to the
 * checked fetch of lib/wal/fetch.ts.
 */
export async function spoolStored(
  dir: string,
  name: string,
  sha256: string,
  compressed: Uint8Array,
  decoder: SegmentDecoder,
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const source = join(dir, `.${name}.zst.${process.pid}`);
  const temp = join(dir, `.${name}.${process.pid}`);
  try {
    await writeFile(source, compressed, { mode: 0o600 });
    // The CRC first, the digest after: bytes that changed in between fail the digest, and any
    // change after both fails the launcher's CRC.
    const { check } = await decoder.decode(source, temp);
    const actual = await sha256OfFile(temp);
    if (actual !== sha256)
      throw new Error(`${name}: its SHA-256 is ${actual}, the archive recorded ${sha256}`);
    await rename(temp, join(dir, entryName(name, sha256, check)));
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  } finally {
    await unlink(source).catch(() => {});
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
