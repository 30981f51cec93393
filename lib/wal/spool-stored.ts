import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { SegmentDecoder } from './segment-decoder.js';
import { entryName } from './spool.js';

/**
 * A segment's stored (compressed) bytes: the file that holds them (a directory store's object,
 * lib/storage/store.ts `fileOf`), or the object's body as the store sends it (`getStream`).
 */
export type StoredSegment = { readonly file: string } | { readonly body: Readable };

/**
 * Spools an archived segment from its stored (compressed) bytes: the decoder's zstd reads them
 * (from the store's own file, or from a temporary file the object's body is written into as it
 * arrives) and writes the segment straight into the spool's temporary file, its cksum reads that
 * file, and the SHA-256 the archive recorded is checked on the file's bytes before it is renamed
 * to its entry.
 * The segment's 16 MiB never pass through a pipe to this process (which cost about as much CPU
 * as the decompression itself, competing with recovery for the host's cores), and what is
 * checked is what the spool holds. Throws (the temporary files removed) when zstd fails or the
 * digest differs: the prefetcher then leaves the segment to the checked fetch of
 * lib/wal/fetch.ts.
 */
export async function spoolStored(
  dir: string,
  name: string,
  sha256: string,
  stored: StoredSegment,
  decoder: SegmentDecoder,
): Promise<void> {
  const source = 'file' in stored ? stored.file : join(dir, `.${name}.zst.${process.pid}`);
  const temp = join(dir, `.${name}.${process.pid}`);
  try {
    // Blocking, as the spool's other small calls are (see spool.ts).
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // A body that ends short or fails the store's own check (S3's CRC of the object, an encrypting
    // store's authentication) throws here.
    if ('body' in stored) await writeBody(source, stored.body);
    // The CRC first, the digest after: bytes that changed in between fail the digest, and any
    // change after both fails the launcher's CRC.
    const { check } = await decoder.decode(source, temp);
    const actual = sha256OfFile(temp);
    if (actual !== sha256)
      throw new Error(`${name}: its SHA-256 is ${actual}, the archive recorded ${sha256}`);
    renameSync(temp, join(dir, entryName(name, sha256, check)));
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  } finally {
    if ('body' in stored) {
      // Not read to its end when this failed first: its connection goes.
      stored.body.destroy();
      await unlink(source).catch(() => {});
    }
  }
}

/**
 * Writes a body into a new file chunk by chunk as it arrives, by blocking writes: no buffer of
 * the whole object (about 1 MB of fresh mapped memory per segment, and the copy into it) and no
 * write on another thread. Against collecting the body and writing it with one asynchronous
 * write, this took a GET of 1 MB from moto from 9.2 to 6.8 ms of CPU (medians of 5 runs of 200).
 */
async function writeBody(path: string, body: Readable): Promise<void> {
  const fd = openSync(path, 'w', 0o600);
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * What the digest reads a file through: small enough to stay in the core's cache while hashed,
 * and to come from the heap. A buffer of 128 KiB or more is mapped memory of its own (glibc's
 * mmap threshold), and on some hosts the kernel copies into such memory several times slower:
 * on a KVM guest here, a 16 MiB segment read into 256 KiB took 9 ms, into 64 KiB 1.6 ms.
 */
const HASH_READ = Buffer.allocUnsafe(64 * 1024);

/**
 * The SHA-256 of a file's bytes, read through one small buffer (no 16 MiB copy in memory), by
 * blocking reads: an asynchronous read is made on another thread, whose bytes then come back
 * to this one's cache to be hashed, which cost about 1.5 ms more CPU per segment (of ~13 ms),
 * more than the ~10 ms that this holds up the prefetcher's other work is worth.
 */
function sha256OfFile(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const read = readSync(fd, HASH_READ, 0, HASH_READ.length, null);
      if (read === 0) break;
      hash.update(HASH_READ.subarray(0, read));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
