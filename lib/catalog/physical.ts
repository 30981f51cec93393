import { type BaseManifest, isBaseBackupId, parseBaseManifest } from '../domain/base-backup.js';
import {
  baseBackupKeys,
  baseBackupsPrefix,
  clusterPrefix,
  isClusterName,
  parseWalObjectKey,
  walFolder,
} from '../domain/physical-layout.js';
import type { ArchivedSegment } from '../domain/wal-continuity.js';
import { parseWalFileName, type WalFileKind } from '../domain/wal-names.js';
import type { BackupStore } from '../storage/store.js';

/**
 * Reading the physical archive of a store: its base backups (those whose manifest exists) and
 * the WAL and history files it holds, by the layout of lib/domain/physical-layout.ts.
 */

export interface BaseBackupListing {
  /** Complete base backups, newest first. */
  readonly bases: BaseManifest[];
  /** Manifests that could not be read or parsed: named, never used. */
  readonly broken: { readonly key: string; readonly error: string }[];
}

/** The base backups of one cluster's archive, newest first. */
export async function listBaseBackups(store: BackupStore, cluster: string): Promise<BaseBackupListing> {
  const folder = baseBackupsPrefix(store.prefix, cluster);
  const keys: string[] = [];
  for await (const o of store.list(`${folder}/`)) {
    const rest = o.key.slice(folder.length + 1);
    const m = /^([^/]+)\.manifest\.json$/.exec(rest);
    if (m?.[1] && isBaseBackupId(m[1])) keys.push(o.key);
  }
  const bases: BaseManifest[] = [];
  const broken: { key: string; error: string }[] = [];
  await Promise.all(
    keys.map(async (key) => {
      try {
        bases.push(parseBaseManifest(JSON.parse((await store.getBytes(key)).toString('utf8'))));
      } catch (error) {
        broken.push({ key, error: (error as Error).message.split('\n')[0] ?? '' });
      }
    }),
  );
  bases.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return { bases, broken };
}

/** One base backup's manifest, or undefined when it has none (it does not exist). */
export async function readBaseManifest(
  store: BackupStore,
  cluster: string,
  id: string,
): Promise<BaseManifest | undefined> {
  const key = baseBackupKeys(store.prefix, cluster, id).manifest;
  if (!(await store.head(key))) return undefined;
  return parseBaseManifest(JSON.parse((await store.getBytes(key)).toString('utf8')));
}

export interface WalListing {
  /** Full segments, by name (`.partial` and `.backup` files are left out). */
  readonly segments: ArchivedSegment[];
  /** History files, by timeline: the object key to fetch. */
  readonly historyKeys: Map<number, string>;
}

/** Every WAL segment and history file in the archive of `cluster` (or in the folders given). */
export async function listWal(
  store: BackupStore,
  cluster: string,
  folders: readonly string[] = [`${clusterPrefix(store.prefix, cluster)}/wal/`],
): Promise<WalListing> {
  const segments: ArchivedSegment[] = [];
  const historyKeys = new Map<number, string>();
  const seen = new Set<string>();
  for (const folder of folders) {
    for await (const o of store.list(folder)) {
      const parsed = parseWalObjectKey(o.key);
      const file = parsed ? parseWalFileName(parsed.name) : undefined;
      if (!file || seen.has(file.name)) continue;
      seen.add(file.name);
      if (file.kind === 'segment') segments.push({ name: file.name, archivedAt: o.lastModified });
      else if (file.kind === 'history') historyKeys.set(file.timeline, o.key);
    }
  }
  segments.sort((a, b) => (a.name < b.name ? -1 : 1));
  return { segments, historyKeys };
}

/** The folders (one per 4 GiB log) that hold the given segments. */
export function foldersOf(store: BackupStore, cluster: string, segments: readonly string[]): string[] {
  const folders = new Set<string>();
  for (const name of segments) {
    const file = parseWalFileName(name);
    if (file) folders.add(`${walFolder(store.prefix, cluster, file)}/`);
  }
  return [...folders];
}

/** One stored object of a cluster's WAL archive: a segment, `.partial`, `.backup` or history file. */
export interface StoredArchiveFile {
  readonly name: string;
  readonly kind: WalFileKind;
  readonly key: string;
  /** The SHA-256 of the original (uncompressed) file, which the key carries. */
  readonly sha256: string;
  /** Bytes stored (compressed, and encrypted where the store encrypts). */
  readonly size: number;
  readonly archivedAt: Date;
  readonly storageClass: string;
}

/**
 * Every WAL object of the cluster's archive, in key order, each with the digest its key carries.
 * A name stored twice (under two digests) appears twice: the caller decides what that means.
 */
export async function listArchiveFiles(store: BackupStore, cluster: string): Promise<StoredArchiveFile[]> {
  const files: StoredArchiveFile[] = [];
  for await (const o of store.list(`${clusterPrefix(store.prefix, cluster)}/wal/`)) {
    const parsed = parseWalObjectKey(o.key);
    const file = parsed ? parseWalFileName(parsed.name) : undefined;
    if (!parsed || !file) continue;
    files.push({
      name: file.name,
      kind: file.kind,
      key: o.key,
      sha256: parsed.sha256,
      size: o.size,
      archivedAt: o.lastModified,
      storageClass: o.storageClass,
    });
  }
  return files;
}

/** The clusters whose physical archive a store holds anything of (`~cluster/<cluster>/…`). */
export async function listClusters(store: BackupStore): Promise<string[]> {
  const root = `${clusterPrefix(store.prefix, '')}/`;
  const clusters = new Set<string>();
  for await (const o of store.list(root)) {
    const name = o.key.slice(root.length).split('/')[0];
    if (name && isClusterName(name)) clusters.add(name);
  }
  return [...clusters].sort();
}
