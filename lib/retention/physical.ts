import * as zlib from 'node:zlib';
import { listBaseBackups } from '../catalog/physical.js';
import type { Config } from '../config.js';
import { type Alert, retentionBlockedAlert } from '../domain/alerts.js';
import { type BaseManifest, baseBackupStartOf, isBaseBackupId } from '../domain/base-backup.js';
import {
  baseBackupKeys,
  baseBackupsPrefix,
  clusterPrefix,
  parseWalObjectKey,
} from '../domain/physical-layout.js';
import { type ArchivedWalFile, planPhysicalRetention } from '../domain/physical-retention.js';
import { parseWalFileName } from '../domain/wal-names.js';
import type { Logger } from '../platform/logger.js';
import { silentLogger } from '../platform/logger.js';
import { objectLockPossible } from '../storage/object-lock.js';
import { zstdBuffer } from '../storage/small-objects.js';
import type { BackupStore } from '../storage/store.js';
import { findLock } from './run.js';

/** What retention decided for one cluster's physical archive and, unless a dry run, what it did. */
export interface PhysicalRetentionReport {
  readonly cluster: string;
  readonly store: string;
  readonly at: string;
  readonly dryRun: boolean;
  /** Why nothing was deleted, when nothing may be; null otherwise. */
  readonly blocked: string | null;
  readonly keptBases: readonly { readonly id: string; readonly stopTime: string }[];
  readonly removedBases: readonly { readonly id: string; readonly stopTime: string }[];
  /** Per timeline, the oldest segment kept. */
  readonly keepFrom: Readonly<Record<string, string>>;
  readonly wal: { readonly kept: number; readonly removed: number };
  /** Base backup manifests that could not be read: nothing is deleted while one exists. */
  readonly broken: readonly { readonly key: string; readonly error: string }[];
  /**
   * Base backups that have objects and no manifest (killed before their end, or whose removal
   * stopped once their manifest was gone): removed once old enough (see {@link listBaseDebris}),
   * kept otherwise with the reason.
   */
  readonly debris: {
    readonly removed: readonly { readonly id: string; readonly objects: number }[];
    readonly kept: readonly {
      readonly id: string;
      readonly reason: 'grace' | 'stale-block' | 'object-lock';
      readonly lockedKey?: string;
    }[];
  };
  readonly deletedKeys: readonly string[];
  readonly failed: readonly { readonly key: string; readonly code: string; readonly message: string }[];
}

export interface PhysicalRetentionOptions {
  readonly store: BackupStore;
  readonly config: Config;
  readonly now: Date;
  readonly dryRun?: boolean;
  readonly logger?: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

const nodeZstd = (zlib as { zstdDecompressSync?: (data: Uint8Array) => Buffer }).zstdDecompressSync;

/** Every WAL file of the cluster's archive, with its object key. */
async function listWalFiles(store: BackupStore, cluster: string): Promise<ArchivedWalFile[]> {
  const files: ArchivedWalFile[] = [];
  for await (const o of store.list(`${clusterPrefix(store.prefix, cluster)}/wal/`)) {
    const parsed = parseWalObjectKey(o.key);
    if (parsed && parseWalFileName(parsed.name))
      files.push({ name: parsed.name, key: o.key, archivedAt: o.lastModified });
  }
  return files;
}

/** The objects of base backups: their manifest first, so one whose manifest went is debris, never half a backup. */
async function baseKeys(store: BackupStore, cluster: string, base: BaseManifest): Promise<string[]> {
  const keys = baseBackupKeys(store.prefix, cluster, base.id);
  const inside: string[] = [];
  for await (const o of store.list(`${keys.folder}/`)) inside.push(o.key);
  return [keys.manifest, ...inside, keys.drillReport];
}

/** The objects of one base backup that has no manifest, and the newest one's time. */
interface BaseDebris {
  readonly id: string;
  readonly keys: readonly string[];
  readonly newest: Date;
}

/**
 * Base backups of the cluster that have objects but no manifest. A base backup exists only once
 * its manifest is written (last), so these are what a killed base backup task left (a killed
 * container cannot clean up after itself), or what a removal left that stopped after deleting
 * the manifest. Keys of any other shape under base/ are not ours to judge and are left out.
 */
async function listBaseDebris(store: BackupStore, cluster: string): Promise<BaseDebris[]> {
  const folder = baseBackupsPrefix(store.prefix, cluster);
  const byId = new Map<string, { keys: string[]; newest: number; manifest: boolean }>();
  for await (const o of store.list(`${folder}/`)) {
    const m = /^([^/.]+)(\.manifest\.json|\.drill\.json|\/.+)$/.exec(o.key.slice(folder.length + 1));
    if (!m?.[1] || !isBaseBackupId(m[1])) continue;
    let entry = byId.get(m[1]);
    if (!entry) {
      entry = { keys: [], newest: 0, manifest: false };
      byId.set(m[1], entry);
    }
    if (m[2] === '.manifest.json') entry.manifest = true;
    entry.keys.push(o.key);
    entry.newest = Math.max(entry.newest, o.lastModified.getTime());
  }
  return [...byId]
    .filter(([, e]) => !e.manifest)
    .map(([id, e]) => ({ id, keys: e.keys, newest: new Date(e.newest) }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

/**
 * Whether a base backup with no manifest is old enough to be debris: nothing of it written for
 * `retention.debrisGrace` (the stage default), and started (its id) longer ago than a base backup
 * may run (`basebackup.timeout`, after which its task is stopped) plus that grace. A base backup
 * still running writes its tablespaces' objects one after the other, so an object long finished
 * alone does not make it dead; a copy that sync is making of an old one writes new objects.
 */
function isOldDebris(debris: BaseDebris, config: Config, now: Date): boolean {
  const grace = config.defaults.retention.debrisGrace;
  const started = baseBackupStartOf(debris.id);
  return (
    now.getTime() - debris.newest.getTime() >= grace &&
    started !== undefined &&
    now.getTime() - started.getTime() >= config.basebackup.timeout + grace
  );
}

/**
 * Retention of the cluster's physical archive (config `wal.cluster`): base backups kept for
 * `pitr.window` plus the newest one before it, WAL kept for `wal.retention` and from the oldest
 * kept base backup's start on (lib/domain/physical-retention.ts). Base backups go first (their
 * manifest before their objects), then the WAL they alone needed. Undefined when the store holds
 * no archive of the cluster.
 */
export async function runPhysicalRetention(
  options: PhysicalRetentionOptions,
): Promise<PhysicalRetentionReport | undefined> {
  const { store, config, now } = options;
  const dryRun = options.dryRun ?? false;
  const cluster = config.wal.cluster;
  const log = (options.logger ?? silentLogger).child({ cluster });
  const [{ bases, broken }, files, debris] = await Promise.all([
    listBaseBackups(store, cluster),
    listWalFiles(store, cluster),
    listBaseDebris(store, cluster),
  ]);
  if (bases.length === 0 && files.length === 0 && broken.length === 0 && debris.length === 0)
    return undefined;

  const histories = new Map<number, string>();
  for (const f of files) {
    const file = parseWalFileName(f.name);
    if (file?.kind !== 'history') continue;
    try {
      const stored = await store.getBytes(f.key);
      // Node 22.15+ (the Lambda runtime) decompresses zstd itself; elsewhere the zstd tool does.
      const text = nodeZstd ? nodeZstd(stored) : await zstdBuffer(stored, 'decompress', options.env ?? {});
      histories.set(file.timeline, text.toString('utf8'));
    } catch {
      // Unreadable: the plan treats the timeline as descending from every earlier one.
    }
  }
  const plan = planPhysicalRetention({
    now,
    walWindowMs: config.wal.retention,
    pitrWindowMs: config.pitr.window,
    bases,
    files,
    histories,
    ...(bases[0] ? { segmentBytes: bases[0].walSegmentBytes } : {}),
  });
  // A manifest that cannot be read may be the base backup a recovery needs: hold everything.
  const blocked =
    plan.blocked ??
    (broken.length > 0
      ? `${broken.length} base backup manifest(s) cannot be read (${broken[0]?.key}): nothing is deleted until they are repaired or removed`
      : undefined);

  const deletedKeys: string[] = [];
  const failed: { key: string; code: string; message: string }[] = [];
  const removeBases = blocked ? [] : plan.removeBases;
  const removeFiles = blocked ? [] : plan.removeFiles;

  // Debris as logical retention treats it: old enough, not while retention is blocked, and never
  // an object under Object Lock (deleting one only hides it behind a delete marker).
  const keptDebris: PhysicalRetentionReport['debris']['kept'][number][] = [];
  const removeDebris: BaseDebris[] = [];
  const old = new Set(debris.filter((d) => isOldDebris(d, config, now)));
  const lockable = !blocked && old.size > 0 && (await objectLockPossible(store));
  for (const d of debris) {
    if (!old.has(d)) keptDebris.push({ id: d.id, reason: 'grace' });
    else if (blocked) keptDebris.push({ id: d.id, reason: 'stale-block' });
    else {
      const lock = lockable ? await findLock(store, d.keys, now) : undefined;
      if (lock) keptDebris.push({ id: d.id, reason: 'object-lock', lockedKey: lock.key });
      else removeDebris.push(d);
    }
  }
  if (!dryRun && !blocked) {
    for (const base of removeBases) {
      const [manifest, ...rest] = await baseKeys(store, cluster, base);
      const first = await store.deleteMany([manifest as string]);
      failed.push(...first.failed);
      if (first.failed.length > 0) continue;
      const others = await store.deleteMany(rest);
      failed.push(...others.failed);
      deletedKeys.push(...first.deleted, ...others.deleted);
    }
    for (const d of removeDebris) {
      const gone = await store.deleteMany(d.keys);
      failed.push(...gone.failed);
      deletedKeys.push(...gone.deleted);
    }
    // The WAL only once every base backup that would need it is gone.
    if (failed.length === 0) {
      const wal = await store.deleteMany(removeFiles.map((f) => f.key));
      failed.push(...wal.failed);
      deletedKeys.push(...wal.deleted);
    }
    log.info('physical retention applied', {
      keptBases: plan.keepBases.length,
      removedBases: removeBases.length,
      removedWal: removeFiles.length,
      removedDebris: removeDebris.length,
      failed: failed.length,
    });
  }
  return {
    cluster,
    store: store.url,
    at: now.toISOString(),
    dryRun,
    blocked: blocked ?? null,
    keptBases: (blocked ? bases : plan.keepBases).map((b) => ({ id: b.id, stopTime: b.stopTime })),
    removedBases: removeBases.map((b) => ({ id: b.id, stopTime: b.stopTime })),
    keepFrom: Object.fromEntries([...plan.keepFrom].map(([tl, name]) => [String(tl), name])),
    wal: { kept: files.length - removeFiles.length, removed: removeFiles.length },
    broken,
    debris: { removed: removeDebris.map((d) => ({ id: d.id, objects: d.keys.length })), kept: keptDebris },
    deletedKeys,
    failed,
  };
}

/** The alert a physical retention run owes people: some deletes failed. */
export function physicalRetentionAlerts(report: PhysicalRetentionReport, now: Date): Alert[] {
  if (report.failed.length === 0) return [];
  const sample = report.failed
    .slice(0, 3)
    .map((f) => `${f.key} (${f.code})`)
    .join(', ');
  return [
    retentionBlockedAlert(
      `cluster ${report.cluster}`,
      `${report.failed.length} object(s) of the physical archive could not be deleted, e.g. ${sample}`,
      now,
    ),
  ];
}
