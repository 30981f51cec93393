import {
  databasePrefix,
  type KeyKind,
  keysFor,
  parseBackupId,
  parseKey,
  parsePartialKey,
} from '../domain/backup-layout.js';
import { BackupNotFoundError, CorruptBackupError, InvalidRestoreRequestError } from '../domain/errors.js';
import { type Manifest, parseManifest } from '../domain/manifest.js';
import { PHYSICAL_ROOT } from '../domain/physical-layout.js';
import { mapLimit } from '../platform/concurrency.js';
import type { BackupStore, IncompleteUpload, ObjectDetails, ObjectInfo } from '../storage/store.js';
import { mustThaw } from './thaw-state.js';

/** One backup as found in a store: its manifest, and the objects beside it. */
export interface StoredBackup {
  readonly manifest: Manifest;
  readonly dump: ObjectInfo;
  readonly manifestObject: ObjectInfo;
  readonly verifyObject?: ObjectInfo;
  /** The cluster globals captured with the dump and their manifest, when the backup has them. */
  readonly globalsObject?: ObjectInfo;
  readonly globalsManifestObject?: ObjectInfo;
}

/** A manifest that cannot be used; `damaged` when its dump is there but not the size it records. */
export interface BrokenBackup {
  readonly key: string;
  readonly reason: string;
  readonly damaged?: boolean;
}

/** What a scan of one database's folder found. */
export interface DatabaseScan {
  readonly database: string;
  /** Complete backups (manifest valid, dump present with the recorded size), newest first. */
  readonly backups: readonly StoredBackup[];
  /**
   * Dumps, globals and verify reports with no manifest (an interrupted or failed backup, a report
   * written for a backup that retention removed meanwhile): removed by retention after a
   * grace period.
   */
  readonly debris: readonly ObjectInfo[];
  /**
   * Multipart uploads of this database's keys begun and never completed (a killed dump to S3),
   * when the scan was asked for them: debris too, aborted by retention after the grace period.
   */
  readonly uploads: readonly IncompleteUpload[];
  /** Manifests that do not parse or whose dump is missing or of another size: reported, never deleted. */
  readonly broken: readonly BrokenBackup[];
}

/**
 * Reads one database's folder: backups with their manifests, debris, broken manifests; with
 * `uploads`, also the incomplete multipart uploads under it.
 */
export async function scanDatabase(
  store: BackupStore,
  database: string,
  options: { readonly uploads?: boolean } = {},
): Promise<DatabaseScan> {
  const groups = new Map<string, Partial<Record<KeyKind, ObjectInfo>>>();
  const debris: ObjectInfo[] = [];
  const folder = databasePrefix(store.prefix, database);
  for await (const object of store.list(folder)) {
    if (parsePartialKey(store.prefix, object.key)?.database === database) {
      debris.push(object);
      continue;
    }
    const parsed = parseKey(store.prefix, object.key);
    if (!parsed || parsed.database !== database) continue;
    const group = groups.get(parsed.backupId) ?? {};
    group[parsed.kind] = object;
    groups.set(parsed.backupId, group);
  }
  const uploads: IncompleteUpload[] = [];
  const parts = store.capabilities.partUploads;
  if (options.uploads && parts) {
    for await (const upload of parts.incomplete(folder)) {
      if (parseKey(store.prefix, upload.key)?.database === database) uploads.push(upload);
    }
  }
  const backups: StoredBackup[] = [];
  const broken: BrokenBackup[] = [];
  const withManifest = [...groups.entries()].filter(([, g]) => g.manifest);
  for (const [, g] of groups) {
    if (g.manifest) continue;
    for (const object of [g.dump, g.verify, g.globals, g.globalsManifest]) if (object) debris.push(object);
  }
  const read = await mapLimit(withManifest, 16, async ([id, g]) => {
    const manifestObject = g.manifest as ObjectInfo;
    try {
      const manifest = parseManifest(JSON.parse((await store.getBytes(manifestObject.key)).toString('utf8')));
      if (manifest.id !== id)
        return { broken: { key: manifestObject.key, reason: `manifest is for ${manifest.id}` } };
      if (!g.dump) return { broken: { key: manifestObject.key, reason: 'dump object is missing' } };
      if (g.dump.size !== manifest.sizeBytes) {
        return {
          broken: {
            key: manifestObject.key,
            reason: `dump is ${g.dump.size} bytes, manifest says ${manifest.sizeBytes}`,
            damaged: true,
          },
        };
      }
      const backup: StoredBackup = {
        manifest,
        dump: g.dump,
        manifestObject,
        ...(g.verify ? { verifyObject: g.verify } : {}),
        ...(g.globals ? { globalsObject: g.globals } : {}),
        ...(g.globalsManifest ? { globalsManifestObject: g.globalsManifest } : {}),
      };
      return { backup };
    } catch (error) {
      return {
        broken: { key: manifestObject.key, reason: `unreadable manifest: ${(error as Error).message}` },
      };
    }
  });
  for (const r of read) {
    if ('backup' in r && r.backup) backups.push(r.backup);
    else if ('broken' in r && r.broken) broken.push(r.broken);
  }
  backups.sort((a, b) => (a.manifest.createdAt < b.manifest.createdAt ? 1 : -1));
  return { database, backups, debris, uploads, broken };
}

/**
 * The databases that have a folder in the store. Stores list in key order, and the physical
 * archive's root (`~cluster/`) sorts after every database name (`~` follows every character a
 * keyable name has), so the listing stops there: the WAL of fourteen days is never paged through.
 */
export async function listStoredDatabases(store: BackupStore): Promise<string[]> {
  const found = new Set<string>();
  const root = store.prefix ? `${store.prefix}/` : '';
  const physical = `${root}${PHYSICAL_ROOT}/`;
  for await (const object of store.list(root)) {
    if (object.key >= physical) break;
    const parsed = parseKey(store.prefix, object.key) ?? parsePartialKey(store.prefix, object.key);
    if (parsed) found.add(parsed.database);
  }
  return [...found].sort();
}

/** Every complete backup, newest first; of one database, or of all in the store. */
export async function listBackups(store: BackupStore, database?: string): Promise<StoredBackup[]> {
  const databases = database ? [database] : await listStoredDatabases(store);
  const scans = await Promise.all(databases.map((d) => scanDatabase(store, d)));
  return scans
    .flatMap((s) => s.backups)
    .sort((a, b) => (a.manifest.createdAt < b.manifest.createdAt ? 1 : -1));
}

export type BackupSelector =
  | { readonly kind: 'id'; readonly id: string }
  | { readonly kind: 'latest'; readonly before?: Date };

/** `latest`, an id, with an optional `before` time → a selector; InvalidRestoreRequestError when malformed. */
export function parseSelector(database: string, backup: string, before?: string): BackupSelector {
  let beforeDate: Date | undefined;
  if (before !== undefined) {
    beforeDate = new Date(before);
    if (!/^\d{4}-\d{2}-\d{2}/.test(before) || Number.isNaN(beforeDate.getTime())) {
      throw new InvalidRestoreRequestError(
        `malformed time ${JSON.stringify(before)}: expected an ISO 8601 time such as 2026-06-20T15:00:00Z`,
      );
    }
  }
  if (backup === 'latest') return beforeDate ? { kind: 'latest', before: beforeDate } : { kind: 'latest' };
  const parsed = parseBackupId(backup);
  if (!parsed) {
    throw new InvalidRestoreRequestError(
      `malformed backup id ${JSON.stringify(backup)}: expected "latest" or <database>-<yyyymmddThhmmssZ>`,
    );
  }
  if (parsed.database !== database) {
    throw new InvalidRestoreRequestError(
      `backup ${backup} belongs to database ${parsed.database}, not ${database}`,
    );
  }
  if (beforeDate)
    throw new InvalidRestoreRequestError('--before applies to "latest" only, not to a backup id');
  return { kind: 'id', id: backup };
}

/**
 * Resolves a selector to one complete backup; BackupNotFoundError when none matches, and
 * CorruptBackupError when the backup asked for by id has a dump of another size than recorded.
 */
export async function findBackup(
  store: BackupStore,
  database: string,
  selector: BackupSelector,
): Promise<StoredBackup> {
  if (selector.kind === 'id') {
    const keys = keysFor(store.prefix, selector.id);
    const scan = await scanDatabase(store, database);
    const found = scan.backups.find((b) => b.manifest.id === selector.id);
    if (found) return found;
    const broken = scan.broken.find((b) => b.key === keys.manifest);
    if (broken?.damaged) throw new CorruptBackupError(`backup ${selector.id} is damaged: ${broken.reason}`);
    throw new BackupNotFoundError(
      broken
        ? `backup ${selector.id} is not usable: ${broken.reason}`
        : `no backup ${selector.id} in ${store.url}`,
    );
  }
  const { backups, broken } = await scanDatabase(store, database);
  const before = selector.before;
  const inRange = (createdAt: Date) => !before || createdAt < before;
  const found = backups.find((b) => inRange(new Date(b.manifest.createdAt)));
  // A damaged backup newer than the one chosen is never skipped in silence: "latest" would
  // then prove, or restore, something older than the operator believes.
  const newerBroken = broken
    .map((b) => ({ ...b, parsed: parseKey(store.prefix, b.key) }))
    .map((b) => ({ ...b, createdAt: b.parsed ? parseBackupId(b.parsed.backupId)?.createdAt : undefined }))
    .filter((b) => b.createdAt && inRange(b.createdAt))
    .filter((b) => !found || (b.createdAt as Date) > new Date(found.manifest.createdAt))
    .sort((a, b) => (a.createdAt as Date).getTime() - (b.createdAt as Date).getTime());
  const newest = newerBroken.at(-1);
  if (newest?.parsed) {
    throw new CorruptBackupError(
      `the newest backup of ${database}, ${newest.parsed.backupId}, is not usable: ${newest.reason}; ` +
        (found
          ? `the newest intact one is ${found.manifest.id}: name it to restore it`
          : 'no older intact backup exists'),
    );
  }
  if (!found) {
    throw new BackupNotFoundError(
      `no backup of ${database} in ${store.url}${before ? ` taken before ${before.toISOString()}` : ''}`,
    );
  }
  return found;
}

/** A backup resolved to its stored object, as it stands now. */
export interface LocatedBackup {
  readonly backup: StoredBackup;
  /** The dump object's details now: lifecycle rules may have archived it since the manifest was written. */
  readonly object: ObjectDetails;
  /** Whether the dump must be thawed before it can be read (archived, and not thawed at present). */
  readonly archived: boolean;
}

/**
 * Resolves a selector to one backup ({@link findBackup}) and looks at its dump as it is now:
 * BackupNotFoundError when the dump is gone, and whether it must be thawed to be read.
 */
export async function locateBackup(
  store: BackupStore,
  database: string,
  selector: BackupSelector,
): Promise<LocatedBackup> {
  const backup = await findBackup(store, database, selector);
  const { id, key } = backup.manifest;
  const object = await store.head(key);
  if (!object) throw new BackupNotFoundError(`backup ${id}: ${key} is gone from ${store.url}`);
  return { backup, object, archived: mustThaw(object) };
}
