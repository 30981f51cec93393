import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CorruptWalError, InvalidWalFileError, WalArchiveUnavailableError } from '../domain/errors.js';
import type { CopyUsed, PassedOver } from '../domain/store-roles.js';
import { parseWalFileName, type WalFileName } from '../domain/wal-names.js';
import type { BackupStore } from '../storage/store.js';
import type { ArchiveInfo, RoleArchive, StoredWalFile } from './archive.js';
import { locateIn, type ReadSettings, readFrom } from './store-read.js';

export interface FetchDeps extends ReadSettings {
  /** Every store's part of the archive, nearest first: the primary, then the secondary. */
  readonly archives: readonly RoleArchive[];
  /** Configured stores that could not even be opened (a NAS directory not mounted). */
  readonly unavailable?: readonly PassedOver[];
  /** Told when a file was read from another copy than the nearest, and why (PostgreSQL's log). */
  readonly onCopyUsed?: (name: string, copy: CopyUsed) => void;
}

export type FetchOutcome =
  | { readonly status: 'fetched'; readonly name: string; readonly sha256: string; readonly bytes: number }
  | { readonly status: 'missing'; readonly name: string };

/** An archived file found in one of the stores: which one, and the nearer ones passed over. */
export interface LocatedWal extends StoredWalFile {
  /** Its store's place in {@link FetchDeps.archives}. */
  readonly at: number;
  readonly passedOver: readonly PassedOver[];
}

/** The store that holds a located file's copy. */
export function storeOf(stored: LocatedWal, deps: FetchDeps): BackupStore {
  return (deps.archives[stored.at] as RoleArchive).archive.store;
}

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

/** The archive's identity, from the nearest store that answers. */
export async function archiveInfo(deps: FetchDeps): Promise<ArchiveInfo | undefined> {
  let failure: unknown;
  for (const { archive } of deps.archives) {
    try {
      const info = await archive.info();
      if (info) return info;
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure) throw failure;
  return undefined;
}

const oneStore = (deps: FetchDeps) => deps.archives.length === 1 && !deps.unavailable?.length;

function reasonOf(error: unknown): string {
  const message = (error as Error).message;
  return error instanceof CorruptWalError ? `damaged (${message})` : `unreadable (${message})`;
}

/**
 * What to do when no store gave the file: never "not archived" while a store that could not be
 * read may hold it (ending recovery there could lose data), and never a damaged copy.
 */
function noCopy(file: WalFileName, passedOver: readonly PassedOver[], errors: readonly unknown[]): Error {
  const each = passedOver.map((p) => `${p.role} store ${p.url}: ${p.reason}`).join('; ');
  const unreadable = errors.some((e) => !(e instanceof CorruptWalError));
  if (!unreadable) {
    return new CorruptWalError(`${file.name} has no good copy in any store: ${each}`, { cause: errors[0] });
  }
  return new WalArchiveUnavailableError(
    `${file.name} could not be read from every store, so it is not known to be unarchived: ${each}. Recovery must not end here: bring the store back, or recover from one store alone (restore_command with --store URL, or a config naming only that store)`,
    { cause: errors[0] },
  );
}

/**
 * Where one archived file stands, nearest store first: the first store's copy that holds it,
 * with the nearer stores that lacked it or could not be read. Undefined ("not archived") only
 * when every configured store answered that it does not hold the name. Each store is retried
 * before it counts as unreadable.
 */
export async function locateWal(file: WalFileName, deps: FetchDeps): Promise<LocatedWal | undefined> {
  const passedOver: PassedOver[] = [...(deps.unavailable ?? [])];
  const errors: unknown[] = passedOver.map((p) => new WalArchiveUnavailableError(p.reason));
  for (const [at, { role, archive }] of deps.archives.entries()) {
    let stored: StoredWalFile | undefined;
    try {
      stored = await locateIn(file, archive, deps);
    } catch (error) {
      if (oneStore(deps)) throw error;
      errors.push(error);
      passedOver.push({ role, url: archive.store.url, reason: reasonOf(error) });
      continue;
    }
    if (stored) return { ...stored, at, passedOver };
    passedOver.push({ role, url: archive.store.url, reason: 'missing' });
  }
  if (errors.length === 0) return undefined;
  throw noCopy(file, passedOver, errors);
}

/**
 * Reads, decompresses and verifies a located file against the digest its key carries; a copy
 * that is damaged or cannot be read falls back to the next store's, which must carry the same
 * digest (two stores holding other contents under one name is not for a fetch to settle).
 * Tells {@link FetchDeps.onCopyUsed} when the copy read is not the nearest store's.
 */
export async function readVerified(file: WalFileName, stored: LocatedWal, deps: FetchDeps): Promise<Buffer> {
  const passedOver = [...stored.passedOver];
  const errors: unknown[] = [];
  let copy: StoredWalFile | undefined = stored;
  for (let at = stored.at; at < deps.archives.length; at++) {
    const { role, archive } = deps.archives[at] as RoleArchive;
    const url = archive.store.url;
    try {
      copy = at === stored.at ? stored : await locateIn(file, archive, deps);
      if (!copy) {
        passedOver.push({ role, url, reason: 'missing' });
        continue;
      }
      if (copy.sha256 !== stored.sha256) {
        throw new CorruptWalError(
          `${file.name} in ${url} has other contents (sha256 ${copy.sha256}) than the ${deps.archives[stored.at]?.role} store's copy (${stored.sha256}); refusing to choose`,
        );
      }
      const bytes = await readFrom(file, copy, archive, deps);
      if (passedOver.length > 0) deps.onCopyUsed?.(file.name, { role, url, passedOver });
      return bytes;
    } catch (error) {
      if (oneStore(deps)) throw error;
      errors.push(error);
      passedOver.push({ role, url, reason: reasonOf(error) });
    }
  }
  throw noCopy(file, passedOver, errors);
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
 * Fetches one archived file for restore_command into `dest`, verified, from the nearest good
 * copy. `missing` only when every store answered that it does not hold the name; a damaged copy
 * with no good one elsewhere, or a store that could not be read, throws.
 */
export async function fetchWal(name: string, dest: string, deps: FetchDeps): Promise<FetchOutcome> {
  const file = walFileOf(name);
  const stored = await locateWal(file, deps);
  if (!stored) return { status: 'missing', name };
  const bytes = await readVerified(file, stored, deps);
  await writeAtomically(dest, bytes);
  return { status: 'fetched', name, sha256: stored.sha256, bytes: bytes.length };
}
