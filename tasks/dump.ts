import { fileURLToPath } from 'node:url';
import { compressionFromConfig, type DumpResult, runDumpToStores } from '../lib/backup/dump.js';
import { type Config, loadDeployedConfig, storeRetention } from '../lib/config.js';
import type { StoreSyncProblems } from '../lib/domain/alerts.js';
import type { Manifest } from '../lib/domain/manifest.js';
import { isDegraded } from '../lib/domain/store-roles.js';
import { sfnClient } from '../lib/platform/aws-clients/sfn.js';
import { createLogger } from '../lib/platform/logger.js';
import { connectionFor } from '../lib/postgres/connection.js';
import { openStoresFor } from '../lib/storage/store-roles.js';
import { syncPhysical } from '../lib/sync/physical.js';
import { type PhysicalTally, type SyncedPhysical, tallyPhysical } from '../lib/sync/physical-report.js';
import { type SyncedBackup, syncStores } from '../lib/sync/sync.js';
import { type SyncAborted, syncProblems } from '../lib/sync/sync-problems.js';
import { runTask, type TaskDeps } from './task-runner.js';

/** The dump task's inputs, from the container's environment (the ECS overrides). */
export function dumpInputs(env: NodeJS.ProcessEnv): { database: string; config: Config; store?: string } {
  const database = env.PGBP_DATABASE;
  if (!database) throw new Error('PGBP_DATABASE is not set: the task needs the database to dump');
  const config = loadDeployedConfig(env);
  return { database, config, ...(env.PGBP_STORE ? { store: env.PGBP_STORE } : {}) };
}

/** The Step Functions output: the manifest without its table list, which can be long. */
export function summarizeManifest<M extends Manifest>(m: M): Omit<M, 'tables'> & { tableCount: number } {
  const { tables, ...rest } = m;
  return { ...rest, tableCount: tables.length };
}

/**
 * What the dump task reports: the manifest (the primary's, or the secondary's when only that
 * store holds it), each store's outcome, and `degraded` when a store failed while the other
 * holds the backup (the backup machine alerts it).
 */
export type DumpTaskResult = Manifest & {
  readonly copies: DumpResult['copies'];
  /** Earlier backups one store lacked, copied from the other after this dump (or not, and why). */
  readonly synced: readonly SyncedBackup[];
  /**
   * The physical archive (config `wal.cluster`) one store lacked, copied from the other: counts
   * per kind and status, and the first entries not copied with why (a day of WAL is too many
   * lines for a state's output).
   */
  readonly syncedPhysical: {
    readonly tally: readonly PhysicalTally[];
    readonly notCopied: readonly SyncedPhysical[];
  };
  readonly degraded: boolean;
  /**
   * What the sync left apart (a copy failed, a conflict, a store that could not be read): the
   * backup machine alerts it as `store-sync-failed`, and the backup still succeeds.
   */
  readonly syncProblems: StoreSyncProblems;
};

/** The entries not copied a task result names; the tally counts them all. */
const NOT_COPIED_SHOWN = 20;

function taskResult(
  { manifest, copies }: DumpResult,
  synced: readonly SyncedBackup[],
  physical: readonly SyncedPhysical[],
  problems: StoreSyncProblems,
): DumpTaskResult {
  return {
    ...manifest,
    copies,
    synced,
    syncedPhysical: {
      tally: tallyPhysical(physical),
      notCopied: physical.filter((p) => p.status !== 'copied').slice(0, NOT_COPIED_SHOWN),
    },
    degraded: isDegraded(copies),
    syncProblems: problems,
  };
}

/** Fargate entrypoint: dump one database into the stage's stores and report the manifest. */
export function main(deps: TaskDeps): Promise<number> {
  return runTask(
    async (context) => {
      const { database, config, store: storeUrl } = dumpInputs(deps.env);
      const connection = await connectionFor(config, deps.env, database);
      context.secrets.push(connection.password);
      const logger = createLogger({ task: 'dump' }, { secrets: [connection.password ?? ''] });
      const [primary, secondary] = await openStoresFor(config, storeUrl);
      if (!primary) throw new Error('no store configured');
      const result = await runDumpToStores(
        {
          database,
          connection,
          store: primary.store,
          compression: compressionFromConfig(config),
          storageClass: primary.storageClass,
          ...(secondary ? { secondary } : {}),
        },
        { env: deps.env, logger, signal: context.signal },
      );
      // The next scheduled run heals a degraded one: what one store lacks is copied from the
      // other. Its failures are reported with the run (and alerted), never fail the dump that
      // succeeded.
      const aborted: SyncAborted[] = [];
      const synced =
        secondary && !context.signal.aborted
          ? await syncStores({
              stores: [primary, secondary],
              database,
              rules: (role, name) => storeRetention(config, role, name),
              now: new Date(),
              logger,
            }).catch((error: unknown): SyncedBackup[] => {
              logger.warn('stores not synced', { error: (error as Error).message });
              aborted.push({ subject: `the backups of ${database}`, error: error as Error });
              return [];
            })
          : [];
      // And the physical archive of the stage's cluster (WAL a wal-push stored in one store
      // only, a base backup that reached one store). Parallel dump tasks may copy the same file:
      // the store refuses the second write, which is reported as stored meanwhile.
      const physical =
        secondary && !context.signal.aborted
          ? await syncPhysical({
              stores: [primary, secondary],
              clusters: [config.wal.cluster],
              windows: () => ({ walMs: config.wal.retention, pitrMs: config.pitr.window }),
              now: new Date(),
              logger,
              env: deps.env,
            }).catch((error: unknown): SyncedPhysical[] => {
              logger.warn('physical archive not synced', { error: (error as Error).message });
              aborted.push({
                subject: `the physical archive of cluster ${config.wal.cluster}`,
                error: error as Error,
              });
              return [];
            })
          : [];
      const stores = secondary ? [primary, secondary] : [primary];
      return taskResult(result, synced, physical, syncProblems(stores, synced, physical, aborted));
    },
    deps,
    summarizeManifest,
    'the dump task',
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main({ env: process.env, stdout: process.stdout, stderr: process.stderr, sfn: sfnClient }).then((code) => {
    process.exitCode = code;
  });
}
