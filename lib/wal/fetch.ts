import { createHash } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  CorruptBackupError,
  CorruptWalError,
  InvalidWalFileError,
  KeyUnavailableError,
  WalArchiveUnavailableError,
} from '../domain/errors.js';
import { parseWalFileName, type WalFileName } from '../domain/wal-names.js';
import type { StoredWalFile, WalArchive } from './archive.js';
import { decompress } from './codec.js';
import { withRetries } from './retry.js';

export interface FetchDeps {
  readonly archive: WalArchive;
  readonly env: NodeJS.ProcessEnv;
  /** Waits between attempts at reading the store (tests shorten them). */
  readonly retryDelaysMs?: readonly number[];
}

export type FetchOutcome =
  | { readonly status: 'fetched'; readonly name: string; readonly sha256: string; readonly bytes: number }
  | { readonly status: 'missing'; readonly name: string };

/** Parses the name restore_command was given; anything else is refused, never taken for "missing". */
export function walFileOf(name: string): WalFileName {
  const file = parseWalFileName(name);
  if (!file) {
    throw new InvalidWalFileError(
      `${JSON.stringify(name)} is not a WAL file name (a segment, .partial, .backup or .history file)`,
    );
  }
  return file;
}

/**
 * Where one archived file stands: its single stored copy, or undefined when the archive (which
 * must itself be there) does not hold it. Store failures are retried, then thrown as
 * WalArchiveUnavailableError: never "not archived".
 */
export async function locateWal(file: WalFileName, deps: FetchDeps): Promise<StoredWalFile | undefined> {
  const { archive } = deps;
  const unavailable = (error: unknown) =>
    new WalArchiveUnavailableError(
      `cannot read the WAL archive ${archive.cluster} in ${archive.store.url} for ${file.name}: ${(error as Error).message}`,
      { cause: error },
    );
  const retries = deps.retryDelaysMs ? { delaysMs: deps.retryDelaysMs } : {};
  const copies = await withRetries(() => archive.find(file), retries).catch((e) => {
    throw unavailable(e);
  });
  const digests = new Set(copies.map((c) => c.sha256));
  if (digests.size > 1) {
    throw new CorruptWalError(
      `${file.name} is archived twice with different contents (${[...digests].join(', ')}); refusing to choose`,
    );
  }
  if (copies[0]) return copies[0];
  // "Not archived" only when the archive itself answers: a store that is not mounted or a wrong
  // prefix looks empty, and taking that for the end of the WAL would end recovery early.
  const info = await withRetries(() => archive.info(), retries).catch((e) => {
    throw unavailable(e);
  });
  if (!info) {
    throw new WalArchiveUnavailableError(
      `there is no WAL archive ${archive.cluster} in ${archive.store.url} (no archive.json): wrong store, prefix or wal.cluster, or the store is not mounted`,
    );
  }
  return undefined;
}

/** Reads, decompresses and verifies one stored file against the digest its key carries. */
export async function readVerified(
  file: WalFileName,
  stored: StoredWalFile,
  deps: FetchDeps,
): Promise<Buffer> {
  const { archive } = deps;
  const retries = deps.retryDelaysMs ? { delaysMs: deps.retryDelaysMs } : {};
  // A damaged copy is read again once: a flaky read must not pass for a damaged archive, and a
  // damaged archive is never handed over.
  const bytes = await withRetries(
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
        original = await decompress(compressed, deps.env);
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
  return bytes;
}

/** Writes `bytes` at `dest` atomically: a temporary file beside it, renamed over it. */
export async function writeAtomically(dest: string, bytes: Uint8Array): Promise<void> {
  const temp = join(dirname(dest), `.${basename(dest)}.pgbp-${process.pid}`);
  const fh = await open(temp, 'w', 0o600);
  try {
    await fh.writeFile(bytes);
  } catch (error) {
    await fh.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw error;
  } finally {
    await fh.close().catch(() => {});
  }
  try {
    await rename(temp, dest);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/**
 * Fetches one archived file for restore_command into `dest`, verified. `missing` only when the
 * archive answered that it does not hold the name; a damaged copy or an unreadable store throws.
 */
export async function fetchWal(name: string, dest: string, deps: FetchDeps): Promise<FetchOutcome> {
  const file = walFileOf(name);
  const stored = await locateWal(file, deps);
  if (!stored) return { status: 'missing', name };
  const bytes = await readVerified(file, stored, deps);
  await writeAtomically(dest, bytes);
  return { status: 'fetched', name, sha256: stored.sha256, bytes: bytes.length };
}
