import * as z from 'zod';
import { type Config, storeRetention } from '../lib/config.js';
import { retentionBlockedAlert } from '../lib/domain/alerts.js';
import { isKeyableDatabaseName } from '../lib/domain/backup-layout.js';
import type { StoreRole } from '../lib/domain/store-roles.js';
import type { Alerter } from '../lib/notify/alerter.js';
import type { Clock } from '../lib/platform/clock.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import {
  type PhysicalRetentionReport,
  physicalRetentionAlerts,
  runPhysicalRetention,
} from '../lib/retention/physical.js';
import {
  type RetentionReport,
  retentionAlerts,
  retentionDatabases,
  runRetention,
} from '../lib/retention/run.js';
import { runtimePorts } from '../lib/runtime.js';
import type { BackupStore } from '../lib/storage/store.js';

/** Strict: a misspelt `dryRun` must fail, not delete. */
export const applyRetentionEvent = z
  .object({
    database: z.string().refine(isKeyableDatabaseName, 'expected a database name').optional(),
    dryRun: z.boolean().default(false),
  })
  .strict();

export interface ApplyRetentionPorts {
  readonly store: BackupStore;
  /** The secondary store, whose backups are kept by its own rules. */
  readonly secondary?: BackupStore;
  readonly config: Config;
  readonly alerter: Alerter;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Where the zstd tool is found, for history files where Node cannot decompress them itself. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Step Functions refuses state over 256 KiB; past this the key lists are cut to a sample (the log has them all). */
const MAX_RESULT_CHARS = 200_000;
const SAMPLE = 100;

function bounded(reports: RetentionReport[], physical: PhysicalRetentionReport | undefined) {
  const full = { databases: reports, ...(physical ? { physical } : {}) };
  if (JSON.stringify(full).length <= MAX_RESULT_CHARS) return { ...full, truncated: false };
  return {
    truncated: true,
    ...(physical
      ? {
          physical: {
            ...physical,
            deletedKeys: physical.deletedKeys.slice(0, SAMPLE),
            deletedKeyCount: physical.deletedKeys.length,
          },
        }
      : {}),
    databases: reports.map((r) => ({
      ...r,
      remove: r.remove.slice(0, SAMPLE).map(({ keys: _keys, ...rest }) => rest),
      removeCount: r.remove.length,
      deletedKeys: r.deletedKeys.slice(0, SAMPLE),
      deletedKeyCount: r.deletedKeys.length,
      debris: { ...r.debris, remove: r.debris.remove.slice(0, SAMPLE) },
    })),
  };
}

/**
 * ApplyRetention: the GFS plan for one database, or for every watched one, applied (or only
 * planned, with `dryRun`). A run the staleness guard blocked, or whose deletes partly failed,
 * publishes a retention-blocked alert itself and still succeeds: the backup is fine.
 */
export function createApplyRetentionHandler(ports: ApplyRetentionPorts) {
  return lambdaHandler(
    {
      name: 'apply-retention',
      // A verdict, not a fault: the state machine catches it and alerts it.
      alertedErrors: ['RetentionBlockedError'],
      event: applyRetentionEvent,
      ...(ports.logger ? { logger: ports.logger } : {}),
      keys: (e) => (e.database ? { database: e.database } : {}),
    },
    async (event, { logger }) => {
      const now = ports.clock.now();
      const stores: { role: StoreRole; store: BackupStore }[] = [
        { role: 'primary', store: ports.store },
        ...(ports.secondary ? [{ role: 'secondary' as const, store: ports.secondary }] : []),
      ];
      const reports: RetentionReport[] = [];
      // Each store by its own rules: the NAS its 7 daily, S3 the GFS tiers.
      for (const { role, store } of stores) {
        // With two stores, one that cannot be read (the NAS unmounted, S3 unreachable) is alerted
        // and left alone; the other store's retention still runs. With one, that is the failure.
        const databases = await (event.database
          ? Promise.resolve([event.database])
          : retentionDatabases(store, ports.config)
        ).catch(async (error: unknown) => {
          if (!ports.secondary) throw error;
          await ports.alerter.publish(
            retentionBlockedAlert(
              event.database ?? `the ${role} store`,
              `the ${role} store ${store.url} could not be read (${(error as Error).message}); its retention did not run`,
              now,
            ),
          );
          return [] as string[];
        });
        for (const database of databases) {
          let report: RetentionReport;
          try {
            report = await runRetention({
              store,
              config: ports.config,
              database,
              now,
              dryRun: event.dryRun,
              logger,
              ...(ports.secondary ? { role, rules: storeRetention(ports.config, role, database) } : {}),
            });
          } catch (error) {
            if (!ports.secondary) throw error;
            await ports.alerter.publish(
              retentionBlockedAlert(
                database,
                `the ${role} store ${store.url} could not be read (${(error as Error).message}); its retention did not run`,
                now,
              ),
            );
            continue;
          }
          for (let i = 0; i < report.deletedKeys.length; i += 500) {
            logger.info('deleted keys', {
              database,
              store: store.url,
              keys: report.deletedKeys.slice(i, i + 500),
            });
          }
          for (const alert of retentionAlerts(report, now)) await ports.alerter.publish(alert);
          reports.push(report);
        }
      }
      // The physical archive (base backups and WAL) with a run over every database.
      const physical = event.database
        ? undefined
        : await runPhysicalRetention({
            store: ports.store,
            config: ports.config,
            now,
            dryRun: event.dryRun,
            logger,
            ...(ports.env ? { env: ports.env } : {}),
          });
      if (physical) {
        for (let i = 0; i < physical.deletedKeys.length; i += 500) {
          logger.info('deleted keys', {
            cluster: physical.cluster,
            keys: physical.deletedKeys.slice(i, i + 500),
          });
        }
        for (const alert of physicalRetentionAlerts(physical, now)) await ports.alerter.publish(alert);
      }
      return { dryRun: event.dryRun, at: now.toISOString(), ...bounded(reports, physical) };
    },
  );
}

export const handler = lazyHandler(async () =>
  createApplyRetentionHandler({ ...(await runtimePorts()), env: process.env }),
);
