import { listStoredDatabases, type StoredBackup, scanDatabase } from '../catalog/backups.js';
import { type Config, databaseSettings } from '../config.js';
import { type Alert, retentionBlockedAlert } from '../domain/alerts.js';
import type { Tier } from '../domain/backup-layout.js';
import {
  type DebrisKeepReason,
  holdLocked,
  isLocked,
  type KeepReason,
  planRetention,
  type RetainableBackup,
  type RetentionRules,
} from '../domain/retention.js';
import { watchedDatabases } from '../domain/staleness.js';
import type { StoreRole } from '../domain/store-roles.js';
import { mapLimit } from '../platform/concurrency.js';
import type { Logger } from '../platform/logger.js';
import { silentLogger } from '../platform/logger.js';
import { objectLockPossible } from '../storage/object-lock.js';
import type { BackupStore, ObjectLock } from '../storage/store.js';

export interface LockReport {
  readonly key: string;
  readonly mode?: string;
  readonly retainUntil?: string;
  readonly legalHold?: boolean;
}

export interface KeptEntry {
  readonly id: string;
  readonly createdAt: string;
  readonly tier: Tier;
  readonly reasons: readonly KeepReason[];
  readonly lock?: LockReport;
}

/** What retention decided for one database and, unless a dry run, what it did. */
export interface RetentionReport {
  readonly database: string;
  readonly store: string;
  /** With two stores, which one this report is of. */
  readonly role?: StoreRole;
  readonly at: string;
  readonly dryRun: boolean;
  /** The database has no entry in the config: the default retention rules applied. */
  readonly defaults: boolean;
  /**
   * Its staleness is watched (configured, or nothing is): a blocked run alerts. A database
   * backed up now and then by hand is not, and a stale one is only held, quietly.
   */
  readonly watched: boolean;
  /** Why nothing was deleted, when the staleness guard held everything; null otherwise. */
  readonly blocked: string | null;
  /** Every kept backup with the reasons it is kept, newest first. */
  readonly kept: readonly KeptEntry[];
  /** Backups the plan deletes, with their keys (manifest first), newest first. */
  readonly remove: readonly {
    readonly id: string;
    readonly createdAt: string;
    readonly tier: Tier;
    readonly keys: readonly string[];
  }[];
  readonly debris: {
    readonly remove: readonly string[];
    readonly kept: readonly {
      readonly key: string;
      readonly reason: DebrisKeepReason;
      readonly lock?: LockReport;
    }[];
  };
  /** Manifests that are unreadable or disagree with their dump: reported, never deleted. */
  readonly broken: readonly { readonly key: string; readonly reason: string }[];
  /** Monthly and yearly dumps whose `tier` tag was missing or wrong (repaired unless a dry run). */
  readonly tagRepairs: readonly { readonly id: string; readonly key: string; readonly tier: Tier }[];
  /** Every key deleted; empty in a dry run. */
  readonly deletedKeys: readonly string[];
  /** Keys the store would not delete. A backup whose manifest could not be deleted is left whole. */
  readonly failed: readonly { readonly key: string; readonly code: string; readonly message: string }[];
}

export interface RetentionRunOptions {
  readonly store: BackupStore;
  readonly config: Config;
  readonly database: string;
  readonly now: Date;
  readonly dryRun?: boolean;
  readonly logger?: Logger;
  /**
   * This store's rules, over the database's ({@link storeRetention}): with two stores each runs
   * with its own (the NAS its 7 daily, S3 the GFS tiers).
   */
  readonly rules?: RetentionRules;
  /** The store's role, for the report, when there are two. */
  readonly role?: StoreRole;
}

interface Candidate extends RetainableBackup {
  readonly stored: StoredBackup;
}

function keysOf(b: StoredBackup): string[] {
  // The manifest comes first: a backup exists only while its manifest does, so once it is gone
  // whatever remains is debris, never a manifest that points at nothing.
  return [
    b.manifestObject.key,
    b.dump.key,
    ...[b.verifyObject, b.globalsManifestObject, b.globalsObject].flatMap((o) => (o ? [o.key] : [])),
  ];
}

function lockReport(key: string, lock: ObjectLock): LockReport {
  return {
    key,
    ...(lock.mode ? { mode: lock.mode } : {}),
    ...(lock.retainUntil ? { retainUntil: lock.retainUntil.toISOString() } : {}),
    ...(lock.legalHold ? { legalHold: true } : {}),
  };
}

/** The first object of `keys` under an active Object Lock, if any. */
export async function findLock(
  store: BackupStore,
  keys: readonly string[],
  now: Date,
): Promise<LockReport | undefined> {
  for (const key of keys) {
    const head = await store.head(key);
    if (head?.lock && isLocked(head.lock, now)) return lockReport(key, head.lock);
  }
  return undefined;
}

/**
 * Plans retention for one database and, unless `dryRun`, applies it: manifests are deleted
 * first, then the dumps and verify reports of the backups whose manifest went, then old debris.
 * Object Lock is checked before anything is deleted (in a dry run too, so both return the same
 * plan). Missing `tier` tags on kept monthly and yearly dumps are repaired.
 */
export async function runRetention(options: RetentionRunOptions): Promise<RetentionReport> {
  const { store, config, database, now } = options;
  const dryRun = options.dryRun ?? false;
  const log = (options.logger ?? silentLogger).child({ database });
  const settings = databaseSettings(config, database);
  const rules = options.rules ?? settings.retention;
  const scan = await scanDatabase(store, database, { uploads: true });
  const backups: Candidate[] = scan.backups.map((stored) => ({
    id: stored.manifest.id,
    createdAt: new Date(stored.manifest.createdAt),
    tier: stored.manifest.tier,
    stored,
  }));
  const first = planRetention({
    now,
    rules,
    staleAfter: config.defaults.staleAfter,
    backups,
    debris: scan.debris.map((d) => ({ key: d.key, lastModified: d.lastModified })),
  });

  const backupLocks = new Map<string, LockReport>();
  const debrisLocks = new Map<string, LockReport>();
  const lockable = first.remove.length + first.debris.remove.length > 0 && (await objectLockPossible(store));
  if (lockable) {
    await mapLimit(first.remove, 16, async (b) => {
      const lock = await findLock(store, keysOf(b.stored), now);
      if (lock) backupLocks.set(b.id, lock);
    });
    await mapLimit(first.debris.remove, 16, async (d) => {
      const lock = await findLock(store, [d.key], now);
      if (lock) debrisLocks.set(d.key, lock);
    });
  }
  const plan = holdLocked(first, new Set(backupLocks.keys()), new Set(debrisLocks.keys()));
  for (const [id, lock] of backupLocks) log.warn('backup under object lock kept', { backupId: id, ...lock });

  const archived = plan.keep.filter((k) => k.backup.tier !== 'daily');
  const repairs = (
    await mapLimit(archived, 8, async ({ backup }) => {
      const key = backup.stored.dump.key;
      const tags = await store.getTags(key);
      return tags.tier === backup.tier ? undefined : { id: backup.id, key, tier: backup.tier, tags };
    })
  ).filter((r) => r !== undefined);

  // Uploads a killed dump left open are debris too (for S3 endpoints without the lifecycle rule
  // that aborts them): aborted once older than the grace period, unless retention is blocked.
  const uploadAge = (u: { initiated: Date }) => now.getTime() - u.initiated.getTime();
  const uploadsToAbort = plan.blocked ? [] : scan.uploads.filter((u) => uploadAge(u) >= rules.debrisGrace);
  const uploadsKept = scan.uploads.filter((u) => !uploadsToAbort.includes(u));

  const deletedKeys: string[] = [];
  const failed: { key: string; code: string; message: string }[] = [];
  if (!dryRun) {
    for (const upload of uploadsToAbort) {
      await store.capabilities.partUploads?.abort(upload).catch((e: Error) => {
        failed.push({
          key: upload.key,
          code: e.name,
          message: `aborting its incomplete upload: ${e.message}`,
        });
      });
    }
    for (const r of repairs) await store.putTags(r.key, { ...r.tags, tier: r.tier });
    const manifests = await store.deleteMany(plan.remove.map((b) => b.stored.manifestObject.key));
    const gone = new Set(manifests.deleted);
    failed.push(...manifests.failed);
    const rest = [
      ...plan.remove
        .filter((b) => gone.has(b.stored.manifestObject.key))
        .flatMap((b) => keysOf(b.stored).slice(1)),
      ...plan.debris.remove.map((d) => d.key),
    ];
    const others = await store.deleteMany(rest);
    failed.push(...others.failed);
    deletedKeys.push(...manifests.deleted, ...others.deleted);
    log.info('retention applied', {
      kept: plan.keep.length,
      removedBackups: plan.remove.length,
      removedDebris: plan.debris.remove.length,
      deletedKeys: deletedKeys.length,
      failed: failed.length,
    });
    for (const f of failed) log.warn('object not deleted', f);
  }

  return {
    database,
    store: store.url,
    ...(options.role ? { role: options.role } : {}),
    at: now.toISOString(),
    dryRun,
    defaults: !settings.configured,
    watched: settings.configured || config.databases.length === 0,
    blocked: plan.blocked ?? null,
    kept: plan.keep.map(({ backup, reasons }) => {
      const lock = backupLocks.get(backup.id);
      return {
        id: backup.id,
        createdAt: backup.stored.manifest.createdAt,
        tier: backup.tier,
        reasons,
        ...(lock ? { lock } : {}),
      };
    }),
    remove: plan.remove.map((b) => ({
      id: b.id,
      createdAt: b.stored.manifest.createdAt,
      tier: b.tier,
      keys: keysOf(b.stored),
    })),
    debris: {
      remove: [...plan.debris.remove.map((d) => d.key), ...uploadsToAbort.map((u) => u.key)],
      kept: [
        ...plan.debris.keep.map(({ object, reason }) => {
          const lock = debrisLocks.get(object.key);
          return { key: object.key, reason, ...(lock ? { lock } : {}) };
        }),
        ...uploadsKept.map((u) => ({
          key: u.key,
          reason: (plan.blocked ? 'stale-block' : 'grace') as DebrisKeepReason,
        })),
      ],
    },
    broken: scan.broken,
    tagRepairs: repairs.map(({ id, key, tier }) => ({ id, key, tier })),
    deletedKeys,
    failed,
  };
}

/** The alerts a retention run owes people: a watched database was blocked, or some deletes failed. */
export function retentionAlerts(report: RetentionReport, now: Date): Alert[] {
  const alerts: Alert[] = [];
  if (report.blocked && report.watched)
    alerts.push(retentionBlockedAlert(report.database, `nothing was deleted because ${report.blocked}`, now));
  if (report.failed.length > 0) {
    const sample = report.failed
      .slice(0, 3)
      .map((f) => `${f.key} (${f.code})`)
      .join(', ');
    alerts.push(
      retentionBlockedAlert(
        report.database,
        `${report.failed.length} object${report.failed.length === 1 ? '' : 's'} could not be deleted, e.g. ${sample}`,
        now,
      ),
    );
  }
  return alerts;
}

/**
 * The databases a run without `--database` covers: every one found in the store and every
 * configured one, the configured first (in config order). One backed up ad hoc
 * (`pgbp dump --database X`) gets the default rules, so its backups do not pile up forever.
 */
export async function retentionDatabases(store: BackupStore, config: Config): Promise<string[]> {
  const configured = config.databases.map((d) => d.name);
  return [...new Set([...configured, ...watchedDatabases([], await listStoredDatabases(store))])];
}
