import type { WalFileName } from './wal-names.js';

/**
 * Where the physical archive (WAL, history files, base backups) lives in a store, beside the
 * logical backups. Its root, `~cluster/`, starts with a character no database name can have
 * (keyable names are letters, digits, `_ . $ -`), so no database folder can collide with it,
 * and the logical catalog never takes it for a database.
 *
 * ```
 * <prefix>/~cluster/<cluster>/archive.json                          the archive's identity (system identifier, major)
 * <prefix>/~cluster/<cluster>/wal/<TTTTTTTTXXXXXXXX>/<file>-<sha256>.zst   segments, .partial and .backup files
 * <prefix>/~cluster/<cluster>/wal/history/<TTTTTTTT.history>-<sha256>.zst
 * <prefix>/~cluster/<cluster>/base/<baseId>/…                       base backup objects (tar streams)
 * <prefix>/~cluster/<cluster>/base/<baseId>.manifest.json           written last: the base backup exists
 * ```
 *
 * A WAL object's name carries the SHA-256 of the original (uncompressed) file, so a push that
 * finds the name stored knows at once whether the contents are the same, and a fetch verifies
 * what it decompressed against the name without reading anything else.
 */

/** The root of the physical archive under a store prefix; no database name can start with `~`. */
export const PHYSICAL_ROOT = '~cluster';

/** The name that identifies one cluster's archive in a store (config `wal.cluster`). */
export const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function isClusterName(name: string): boolean {
  return CLUSTER_NAME.test(name);
}

function join(...parts: string[]): string {
  return parts
    .map((p) => p.replace(/^\/+|\/+$/g, ''))
    .filter((p) => p !== '')
    .join('/');
}

/** The folder of one cluster's archive. */
export function clusterPrefix(prefix: string, cluster: string): string {
  return join(prefix, PHYSICAL_ROOT, cluster);
}

/** The archive's identity object, written once by the first push. */
export function archiveInfoKey(prefix: string, cluster: string): string {
  return join(clusterPrefix(prefix, cluster), 'archive.json');
}

/** The folder a WAL file's object lives in: one per 256 segments (a 4 GiB log), history files apart. */
export function walFolder(prefix: string, cluster: string, file: WalFileName): string {
  const base = join(clusterPrefix(prefix, cluster), 'wal');
  return file.kind === 'history' ? join(base, 'history') : join(base, file.name.slice(0, 16));
}

/** What a listing of {@link walFolder} is filtered by to find one file's object: `<folder>/<name>-`. */
export function walObjectPrefix(prefix: string, cluster: string, file: WalFileName): string {
  return `${walFolder(prefix, cluster, file)}/${file.name}-`;
}

/** The key of a WAL file's object: its name, the SHA-256 of its original bytes, the codec. */
export function walObjectKey(prefix: string, cluster: string, file: WalFileName, sha256: string): string {
  return `${walObjectPrefix(prefix, cluster, file)}${sha256}.zst`;
}

const WAL_OBJECT = /\/wal\/(?:history|[0-9A-F]{16})\/([^/]+)-([0-9a-f]{64})\.zst$/;

/** The file name and digest a WAL object's key carries; undefined for any other key. */
export function parseWalObjectKey(
  key: string,
): { readonly name: string; readonly sha256: string } | undefined {
  const m = WAL_OBJECT.exec(key);
  return m?.[1] && m[2] ? { name: m[1], sha256: m[2] } : undefined;
}

/** The folder of base backups. */
export function baseBackupsPrefix(prefix: string, cluster: string): string {
  return join(clusterPrefix(prefix, cluster), 'base');
}

/** The objects of one base backup, and its manifest (written last). */
export function baseBackupKeys(prefix: string, cluster: string, baseId: string) {
  const folder = join(baseBackupsPrefix(prefix, cluster), baseId);
  return {
    folder,
    /** One tar stream per tablespace: `base.tar.zst` for the main data directory. */
    tar: (name: string) => `${folder}/${name}.tar.zst`,
    /** PostgreSQL's backup_manifest, kept apart by base backups of manifest version 1 only (it is in the tar). */
    backupManifest: `${folder}/backup_manifest.zst`,
    manifest: `${folder}.manifest.json`,
    /** The report of the last point-in-time recovery drill that used this base backup. */
    drillReport: `${folder}.drill.json`,
  } as const;
}
