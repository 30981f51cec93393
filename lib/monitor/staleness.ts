import { listStoredDatabases, scanDatabase } from '../catalog/backups.js';
import { readVerifyOutcome } from '../catalog/verify-reports.js';
import type { Config } from '../config.js';
import { type Alert, lowFreeSpaceAlert, staleAlert } from '../domain/alerts.js';
import type { Tier } from '../domain/backup-layout.js';
import {
  assessFreeSpace,
  assessStaleness,
  type FreeSpaceVerdict,
  type StalenessVerdict,
  watchedDatabases,
} from '../domain/staleness.js';
import type { Alerter } from '../notify/alerter.js';
import type { Logger } from '../platform/logger.js';
import { silentLogger } from '../platform/logger.js';
import type { Metric, MetricsSink } from '../platform/metrics.js';
import type { BackupStore } from '../storage/store.js';

export interface DatabaseStatus extends StalenessVerdict {
  /** Whether the watchdog answers for this database (configured, or none configured). */
  readonly watched: boolean;
  readonly newest: {
    readonly id: string;
    readonly createdAt: string;
    readonly sizeBytes: number;
    readonly tier: Tier;
    readonly storageClass: string;
  } | null;
  readonly counts: Readonly<Record<Tier, number>> & { readonly total: number };
  /**
   * The newest backup with a verify report, when that report was written, and whether every
   * check passed (null when the report cannot be read).
   */
  readonly lastRestoreCheck: {
    readonly backupId: string;
    readonly at: string;
    readonly passed: boolean | null;
  } | null;
  readonly debris: number;
  readonly broken: number;
  /** Backups stored before client-side encryption (their manifests have no envelope). */
  readonly unencrypted: number;
}

export interface StoreStatus {
  readonly store: string;
  readonly at: string;
  readonly databases: readonly DatabaseStatus[];
  /** For a directory store (the NAS): free space against the floor; null for S3. */
  readonly freeSpace: FreeSpaceVerdict | null;
  /** Whether any watched database is stale. */
  readonly anyStale: boolean;
  /** What an operator should know that is not staleness: plaintext backups on a stage that requires encryption. */
  readonly warnings: readonly string[];
}

/**
 * Per database (configured ones and any found in the store): the newest good backup, its age,
 * tier counts and last restore check; and the store's free space where it has such a thing.
 */
export async function storeStatus(options: {
  readonly store: BackupStore;
  readonly config: Config;
  readonly now: Date;
  /** Only these databases; default: the configured ones and those in the store. */
  readonly databases?: readonly string[];
}): Promise<StoreStatus> {
  const { store, config, now } = options;
  const configured = config.databases.map((d) => d.name);
  const stored = await listStoredDatabases(store);
  const watched = new Set(watchedDatabases(configured, stored));
  const names = options.databases ?? [...new Set([...configured, ...stored])];
  const databases = await Promise.all(
    names.map(async (database): Promise<DatabaseStatus> => {
      const scan = await scanDatabase(store, database, { uploads: true });
      const newest = scan.backups[0];
      const verdict = assessStaleness(
        database,
        newest ? { id: newest.manifest.id, createdAt: new Date(newest.manifest.createdAt) } : undefined,
        now,
        config.defaults.staleAfter,
      );
      const counts = { daily: 0, monthly: 0, yearly: 0, total: scan.backups.length };
      for (const b of scan.backups) counts[b.manifest.tier] += 1;
      const checked = scan.backups.find((b) => b.verifyObject);
      return {
        ...verdict,
        watched: watched.has(database),
        newest: newest
          ? {
              id: newest.manifest.id,
              createdAt: newest.manifest.createdAt,
              sizeBytes: newest.manifest.sizeBytes,
              tier: newest.manifest.tier,
              storageClass: newest.dump.storageClass,
            }
          : null,
        counts,
        lastRestoreCheck: checked?.verifyObject
          ? {
              backupId: checked.manifest.id,
              at: checked.verifyObject.lastModified.toISOString(),
              passed: (await readVerifyOutcome(store, checked.verifyObject.key))?.passed ?? null,
            }
          : null,
        debris: scan.debris.length + scan.uploads.length,
        broken: scan.broken.length,
        unencrypted: scan.backups.filter((b) => !b.manifest.encryption.envelope).length,
      };
    }),
  );
  const space = await store.capabilities.local?.freeSpace();
  return {
    store: store.url,
    at: now.toISOString(),
    databases,
    freeSpace: space ? assessFreeSpace(space, config.defaults.minFreeSpaceRatio) : null,
    anyStale: databases.some((d) => d.watched && d.stale),
    warnings: config.encryption?.required
      ? databases
          .filter((d) => d.unencrypted > 0)
          .map(
            (d) =>
              `${d.database}: ${d.unencrypted} backup${d.unencrypted === 1 ? '' : 's'} stored before encryption (plaintext), on a stage that requires encryption; they stay readable until retention removes them`,
          )
      : [],
  };
}

export interface StalenessRunResult extends StoreStatus {
  readonly alerts: readonly {
    readonly kind: Alert['kind'];
    readonly database?: string;
    readonly summary: string;
  }[];
}

/**
 * The hourly watchdog: for each watched database, the newest good backup's age → a
 * `BackupAgeHours` metric and, past the threshold, a `backup-stale` alert; for a directory
 * store, free space → a `FreeSpacePercent` metric and a `low-free-space` alert below the floor.
 * It reads only the store, so it fires even when the pipeline never started.
 */
export async function checkStaleness(options: {
  readonly store: BackupStore;
  readonly config: Config;
  readonly now: Date;
  readonly alerter: Alerter;
  readonly metrics: MetricsSink;
  readonly logger?: Logger;
}): Promise<StalenessRunResult> {
  const { store, config, now, alerter, metrics } = options;
  const log = options.logger ?? silentLogger;
  const configured = config.databases.map((d) => d.name);
  const databases = watchedDatabases(
    configured,
    configured.length > 0 ? [] : await listStoredDatabases(store),
  );
  const status = await storeStatus({ store, config, now, databases });
  const alerts: Alert[] = [];
  for (const d of status.databases) {
    const values: Metric[] =
      d.ageHours === null ? [] : [{ name: 'BackupAgeHours', value: d.ageHours, unit: 'None' }];
    metrics.emit({ Stage: config.stage, Database: d.database }, values, now);
    if (d.stale) alerts.push(staleAlert(d, now));
    log.info('backup age', {
      database: d.database,
      ageHours: d.ageHours,
      stale: d.stale,
      newestId: d.newestId,
    });
  }
  if (status.freeSpace) {
    metrics.emit(
      { Stage: config.stage, Store: store.url },
      [
        {
          name: 'FreeSpacePercent',
          value: Math.round(status.freeSpace.freeRatio * 10_000) / 100,
          unit: 'Percent',
        },
      ],
      now,
    );
    if (status.freeSpace.low) alerts.push(lowFreeSpaceAlert(store.url, status.freeSpace, now));
  }
  // Every alert is attempted; the first failure is rethrown after, so the invocation fails visibly.
  const outcomes = await Promise.allSettled(alerts.map((a) => alerter.publish(a)));
  const failure = outcomes.find((o) => o.status === 'rejected');
  if (failure) throw (failure as PromiseRejectedResult).reason;
  return {
    ...status,
    alerts: alerts.map((a) => ({
      kind: a.kind,
      ...(a.database ? { database: a.database } : {}),
      summary: a.summary,
    })),
  };
}
