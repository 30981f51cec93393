import { createHash } from 'node:crypto';
import {
  CorruptBackupError,
  CorruptWalError,
  KeyUnavailableError,
  WalArchiveUnavailableError,
} from '../domain/errors.js';
import type { WalFileName } from '../domain/wal-names.js';
import type { StoredWalFile, WalArchive } from './archive.js';
import { decompress } from './codec.js';
import { withRetries } from './retry.js';

/** How one store is read: the environment (zstd) and the waits between attempts. */
export interface ReadSettings {
  readonly env: NodeJS.ProcessEnv;
  /** Waits between attempts at reading the store (tests shorten them). */
  readonly retryDelaysMs?: readonly number[];
}

/**
 * Where one archived file stands in one store: its single stored copy, or undefined when the
 * archive (which must itself be there) does not hold it. Store failures are retried, then thrown
 * as WalArchiveUnavailableError: never "not archived".
 */
export async function locateIn(
  file: WalFileName,
  archive: WalArchive,
  settings: ReadSettings,
): Promise<StoredWalFile | undefined> {
  const unavailable = (error: unknown) =>
    new WalArchiveUnavailableError(
      `cannot read the WAL archive ${archive.cluster} in ${archive.store.url} for ${file.name}: ${(error as Error).message}`,
      { cause: error },
    );
  const retries = settings.retryDelaysMs ? { delaysMs: settings.retryDelaysMs } : {};
  const copies = await withRetries(() => archive.find(file), retries).catch((e) => {
    throw unavailable(e);
  });
  const digests = new Set(copies.map((c) => c.sha256));
  if (digests.size > 1) {
    throw new CorruptWalError(
      `${file.name} is archived twice in ${archive.store.url} with different contents (${[...digests].join(', ')}); refusing to choose`,
    );
  }
  if (copies[0]) return copies[0];
  // "Not archived" only when the archive itself answers: a store that is not mounted or a wrong
  // prefix looks empty, and taking that for the end of the WAL would end recovery early. Asked on
  // every answer of "not archived" (the prefetcher's, each second at the archive's end), so by
  // one request: what the archive records is not needed here.
  const exists = await withRetries(() => archive.exists(), retries).catch((e) => {
    throw unavailable(e);
  });
  if (!exists) {
    throw new WalArchiveUnavailableError(
      `there is no WAL archive ${archive.cluster} in ${archive.store.url} (no archive.json): wrong store, prefix or wal.cluster, or the store is not mounted`,
    );
  }
  return undefined;
}

/** Reads, decompresses and verifies one stored copy against the digest its key carries. */
export async function readFrom(
  file: WalFileName,
  stored: StoredWalFile,
  archive: WalArchive,
  settings: ReadSettings,
): Promise<Buffer> {
  const retries = settings.retryDelaysMs ? { delaysMs: settings.retryDelaysMs } : {};
  // A damaged copy is read again once: a flaky read must not pass for a damaged archive, and a
  // damaged archive is never handed over.
  return withRetries(
    async () => {
      let compressed: Buffer;
      try {
        compressed = await archive.store.getBytes(stored.key);
      } catch (error) {
        // An encrypted copy that does not authenticate, or is bound to another place, is damaged.
        if (error instanceof CorruptBackupError) {
          throw new CorruptWalError(`${file.name} in ${archive.store.url} is damaged: ${error.message}`, {
            cause: error,
          });
        }
        if (error instanceof KeyUnavailableError) throw error;
        throw new WalArchiveUnavailableError(
          `cannot read ${file.name} from ${archive.store.url}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      let original: Buffer;
      try {
        original = await decompress(compressed, settings.env);
      } catch (error) {
        throw new CorruptWalError(
          `${file.name} in ${archive.store.url} is damaged: ${(error as Error).message.split('\n')[0]}`,
          { cause: error },
        );
      }
      const sha256 = createHash('sha256').update(original).digest('hex');
      if (sha256 !== stored.sha256) {
        throw new CorruptWalError(
          `${file.name} in ${archive.store.url} is damaged: its SHA-256 is ${sha256}, the archive recorded ${stored.sha256}`,
        );
      }
      return original;
    },
    { attempts: 2, ...retries },
  );
}
