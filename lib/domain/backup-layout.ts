/**
 * The logical backups' identity and layout (pure; reading a store is lib/catalog/):
 * `<prefix>/<database>/<YYYY>/<MM>/<DD>/<backupId>.dump`, with `<backupId>.manifest.json` beside it,
 * the cluster globals captured with it (`<backupId>.globals.sql` and `<backupId>.globals.json`)
 * and `<backupId>.verify.json` once checked; backup ids and tiers.
 */

export type Tier = 'daily' | 'monthly' | 'yearly';

export const TIERS: readonly Tier[] = ['daily', 'monthly', 'yearly'];

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const ID = /^(.+)-(\d{8}T\d{6}Z)$/;

/** Database names that can stand in a key segment and a backup id unchanged. */
const SAFE_DATABASE = /^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$/;

/** Whether `name` is a database name this project can key backups by. */
export function isKeyableDatabaseName(name: string): boolean {
  return SAFE_DATABASE.test(name);
}

/** Tier from the UTC calendar date: 1 January is yearly, the 1st of a month monthly. */
export function classifyTier(at: Date): Tier {
  if (at.getUTCDate() !== 1) return 'daily';
  return at.getUTCMonth() === 0 ? 'yearly' : 'monthly';
}

/** `yyyymmddThhmmssZ` in UTC, to the second. */
export function formatStamp(at: Date): string {
  return at
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

export function backupIdFor(database: string, at: Date): string {
  return `${database}-${formatStamp(at)}`;
}

export interface ParsedBackupId {
  readonly database: string;
  readonly createdAt: Date;
}

/** Parses `<database>-<yyyymmddThhmmssZ>`; undefined when the id is malformed. */
export function parseBackupId(id: string): ParsedBackupId | undefined {
  const m = ID.exec(id);
  if (!m) return undefined;
  const [, database, stamp] = m;
  const createdAt = parseStamp(stamp ?? '');
  if (!database || !createdAt || !isKeyableDatabaseName(database)) return undefined;
  return { database, createdAt };
}

/** The time a `yyyymmddThhmmssZ` stamp names; undefined when it is malformed or no real time. */
export function parseStamp(stamp: string): Date | undefined {
  const s = STAMP.exec(stamp);
  if (!s) return undefined;
  const [, y, mo, d, h, mi, se] = s.map(Number) as [number, number, number, number, number, number, number];
  const at = new Date(Date.UTC(y, mo - 1, d, h, mi, se));
  return formatStamp(at) === stamp ? at : undefined;
}

function joinPrefix(prefix: string, rest: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return p ? `${p}/${rest}` : rest;
}

/** The folder of one database's backups: `<prefix>/<database>/`. */
export function databasePrefix(prefix: string, database: string): string {
  return `${joinPrefix(prefix, database)}/`;
}

export interface BackupKeys {
  readonly dump: string;
  readonly manifest: string;
  readonly verify: string;
  /** The cluster globals captured with the dump (pg_dumpall --globals-only), and their manifest. */
  readonly globals: string;
  readonly globalsManifest: string;
}

/** The object keys of one backup, from its id alone. */
export function keysFor(prefix: string, backupId: string): BackupKeys {
  const parsed = parseBackupId(backupId);
  if (!parsed) throw new RangeError(`malformed backup id: ${JSON.stringify(backupId)}`);
  const at = parsed.createdAt.toISOString();
  const folder = joinPrefix(
    prefix,
    `${parsed.database}/${at.slice(0, 4)}/${at.slice(5, 7)}/${at.slice(8, 10)}/${backupId}`,
  );
  return {
    dump: `${folder}.dump`,
    manifest: `${folder}.manifest.json`,
    verify: `${folder}.verify.json`,
    globals: `${folder}.globals.sql`,
    globalsManifest: `${folder}.globals.json`,
  };
}

export type KeyKind = 'dump' | 'manifest' | 'verify' | 'globals' | 'globalsManifest';

const KIND_OF_SUFFIX: Readonly<Record<string, KeyKind>> = {
  dump: 'dump',
  'manifest.json': 'manifest',
  'verify.json': 'verify',
  'globals.sql': 'globals',
  'globals.json': 'globalsManifest',
};

/**
 * Recognises the temporary file of a key of the layout, `<dir>/.<name>.partial-<hex>`, which a
 * file store write that was killed leaves behind: debris of that backup.
 */
export function parsePartialKey(
  prefix: string,
  key: string,
): { readonly backupId: string; readonly database: string; readonly kind: KeyKind } | undefined {
  const m = /^((?:[^/]+\/)*)\.([^/]+)\.partial-[0-9a-f]+$/.exec(key);
  if (!m) return undefined;
  return parseKey(prefix, `${m[1] ?? ''}${m[2] ?? ''}`);
}

/** Recognises a key of the layout; anything else is not ours and is left alone. */
export function parseKey(
  prefix: string,
  key: string,
): { readonly backupId: string; readonly database: string; readonly kind: KeyKind } | undefined {
  const m = /([^/]+?)\.(dump|manifest\.json|verify\.json|globals\.sql|globals\.json)$/.exec(key);
  if (!m) return undefined;
  const [, backupId, ext] = m;
  const parsed = parseBackupId(backupId ?? '');
  const kind = KIND_OF_SUFFIX[ext ?? ''];
  if (!parsed || !backupId || !kind) return undefined;
  if (keysFor(prefix, backupId)[kind] !== key) return undefined;
  return { backupId, database: parsed.database, kind };
}
