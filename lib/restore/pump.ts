import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { CorruptBackupError } from '../domain/errors.js';
import type { Manifest } from '../domain/manifest.js';
import type { ArchiveCounter } from '../postgres/archive-counts.js';
import { readAgainst } from '../storage/store.js';

/** Waits until a writable can take more, or is gone. */
export function drained(sink: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('error', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('error', done);
    sink.on('close', done);
  });
}

export interface Pumped {
  readonly bytes: number;
  readonly sha256: string;
  /** The stream was stopped early by `stop` (the digest is then of a prefix). */
  readonly stopped: boolean;
}

/**
 * Reads the whole stored object, hashing and counting every byte, and feeds it to `sink` for as
 * long as the sink takes it. A sink that dies (pg_restore or zstd choked on a damaged archive)
 * does not stop the reading: the digest of the whole object is what tells corruption apart from
 * a failed restore.
 */
export async function pump(
  source: Readable,
  sink: Writable,
  onBytes: (bytes: number) => void,
  stop?: AbortSignal,
  /** Also reads every byte, when the bytes are the archive itself (not compressed around it). */
  counter?: ArchiveCounter,
): Promise<Pumped> {
  const hash = createHash('sha256');
  let bytes = 0;
  let alive = true;
  const dead = () => {
    alive = false;
  };
  sink.on('error', dead);
  sink.on('close', dead);
  try {
    for await (const chunk of source) {
      if (stop?.aborted) {
        source.destroy();
        return { bytes, sha256: hash.digest('hex'), stopped: true };
      }
      const buf = chunk as Buffer;
      hash.update(buf);
      bytes += buf.length;
      onBytes(bytes);
      counter?.push(buf);
      if (alive && !sink.write(buf)) await drained(sink);
    }
    if (alive) sink.end();
    return { bytes, sha256: hash.digest('hex'), stopped: false };
  } catch (error) {
    sink.destroy();
    throw error;
  } finally {
    sink.off('error', dead);
    sink.off('close', dead);
  }
}

/**
 * Refuses an object whose size or digest is not the manifest's: nothing of it is restored. An
 * encrypted object's stored bytes were checked by the store as they were read (the reader sees
 * plaintext), and each frame authenticated before it was passed on.
 */
export function checkDigest(manifest: Manifest, pumped: Pumped): void {
  if (!readAgainst(manifest).check) return;
  if (pumped.bytes !== manifest.sizeBytes) {
    throw new CorruptBackupError(
      `backup ${manifest.id} is damaged: read ${pumped.bytes} bytes, the manifest records ${manifest.sizeBytes}; nothing was restored`,
    );
  }
  if (pumped.sha256 !== manifest.sha256) {
    throw new CorruptBackupError(
      `backup ${manifest.id} is damaged: its SHA-256 is ${pumped.sha256}, the manifest records ${manifest.sha256}; nothing was restored`,
    );
  }
}
