import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { type ByteSource, childOutput } from './byte-source.js';
import type { BackupStore, PutOptions, StoredBody } from './store.js';

/** What the last process of a pipe is, as far as where it may write goes. */
export type Writer =
  /** Writes its output once, front to back (zstd): it may write into the object's file itself. */
  | 'sequential'
  /** May seek back to rewrite what it wrote (pg_dump on a file): a reader behind it would hash stale bytes. */
  | 'seeking';

/**
 * Whether the last process of a pipe writes straight into the store's temporary file (the fast
 * path: the bytes never pass through this process, which reads the file back from the page
 * cache to hash it), or into a socket this process reads into `putStream`. The one place this
 * is decided: only a store on this machine's file system offers a file to write into, and only
 * a writer that never seeks back may be read behind.
 */
export function writesIntoStoreFile(store: BackupStore, writer: Writer): boolean {
  return store.capabilities.local?.openSink !== undefined && writer === 'sequential';
}

/** Where a child writes a new object, and how the object is then completed. */
export interface ChildOutput {
  /** The child's stdout: the object's temporary file, or the child's end of a socket. */
  readonly childEnd: number | Socket;
  /** Whether the child writes into the store's file ({@link writesIntoStoreFile}). */
  readonly intoFile: boolean;
  /** Closes this process's copy of the child's end, once the child has it. */
  release(): void;
  /**
   * Stores what the child writes, hashing every byte, holding the end back until `finished`
   * (every process exited cleanly, every check passed): the object exists whole or not at all.
   * `beforeCommit` runs once all is read and before a file is made the object. Resolves with the
   * bytes stored, and their SHA-256 where a wrapper stored other bytes than it read (encryption);
   * otherwise `hash` holds the digest of what is stored.
   */
  store(
    finished: Promise<void>,
    hash: Hash,
    options?: { readonly onProgress?: (bytes: number) => void; readonly beforeCommit?: () => void },
  ): Promise<StoredBody>;
  /** Removes what was begun (the temporary file) and stops reading; after a failure. */
  abort(): Promise<void>;
}

/**
 * Opens where a child writes the object `key`. A store that refuses the key (it exists) throws
 * here, before any process starts; `socketFailed` names a failure to make the socket.
 */
export async function openChildOutput(
  store: BackupStore,
  key: string,
  writer: Writer,
  put: PutOptions,
  socketFailed: (cause: unknown) => Error,
): Promise<ChildOutput> {
  const openSink = store.capabilities.local?.openSink;
  if (openSink && writesIntoStoreFile(store, writer)) {
    const sink = await openSink(key, put);
    return {
      childEnd: sink.handle.fd,
      intoFile: true,
      release: () => {},
      async store(finished, hash, options = {}) {
        const bytes = await readBack(sink.handle, finished, hash, options.onProgress);
        options.beforeCommit?.();
        await sink.commit();
        return { bytes };
      },
      abort: () => sink.abort(),
    };
  }
  const output = await childOutput().catch((cause: unknown) => {
    throw socketFailed(cause);
  });
  return {
    childEnd: output.childEnd,
    intoFile: false,
    release: () => output.childEnd.destroy(),
    async store(finished, hash, options = {}) {
      const stored = await store.putStream(key, gated(output.source, finished, hash), {
        ...put,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      return stored;
    },
    async abort() {
      output.source.destroy();
    },
  };
}

/**
 * The dump's output as the store reads it: every byte hashed as it is filled in, and the end
 * held back until `finished` (every process exited with 0, every check passed), so the store
 * completes the object only for a whole dump. A failure stops it at once, mid-part.
 */
export function gated(source: ByteSource, finished: Promise<void>, hash: Hash): ByteSource {
  finished.catch((error: unknown) => source.destroy(error as Error));
  return {
    async fill(into) {
      const filled = await source.fill(into);
      hash.update(into.subarray(0, filled));
      if (filled < into.length) await finished;
      return filled;
    },
    destroy: (error) => source.destroy(error),
  };
}

/** Read-back buffer, and how much is written before the next flush to disk is started. */
const READ_BACK_BYTES = 1024 * 1024;
const FLUSH_EVERY_BYTES = 64 * 1024 * 1024;

/**
 * Reads back, as it grows, a file that the processes are writing, until `finished` (they all
 * exited, the checks passed) and its end is reached; hashes every byte. Flushes to disk run
 * behind the writer every 64 MiB, so that the final sync has only the tail left to wait for.
 * Rejects as soon as a process or check fails.
 */
export async function readBack(
  handle: FileHandle,
  finished: Promise<void>,
  hash: Hash,
  onProgress?: (bytes: number) => void,
): Promise<number> {
  let complete = false;
  let failure: unknown;
  const settled = finished.then(
    () => {
      complete = true;
    },
    (error: unknown) => {
      failure = error;
    },
  );
  const buffer = Buffer.allocUnsafe(READ_BACK_BYTES);
  let position = 0;
  let flushedTo = 0;
  let flushing: Promise<void> = Promise.resolve();
  for (;;) {
    if (failure) throw failure;
    // Checked before the read: once every writer has exited, a read that finds nothing is the end.
    const writersDone = complete;
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead > 0) {
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
      onProgress?.(position);
      if (position - flushedTo >= FLUSH_EVERY_BYTES) {
        await flushing;
        flushedTo = position;
        flushing = handle.datasync();
      }
    } else if (writersDone) {
      break;
    } else {
      await Promise.race([settled, delay(20)]);
    }
  }
  await flushing;
  return position;
}
