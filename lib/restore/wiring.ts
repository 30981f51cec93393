import { type Config, databaseSettings } from '../config.js';
import type { PassedOver, StoreRole } from '../domain/store-roles.js';
import type { RestoreReport } from '../domain/verify-report.js';
import type { Logger } from '../platform/logger.js';
import { connectionFor } from '../postgres/connection.js';
import type { Connection } from '../postgres/pg-tools.js';
import type { BackupStore } from '../storage/store.js';
import type { RoleStore } from '../storage/store-roles.js';
import type { RestoreDeps } from './context.js';
import { nextAfterCorrupt, planCopies } from './copies.js';
import { withRestoreServer } from './drill-target.js';
import { type RestoreRequest, selectorOf } from './request.js';
import { runRestore } from './restore.js';

/** What an entrypoint (the CLI, the restore task) brings to a restore; the rest is wired here. */
export interface RestoreWiring {
  readonly config: Config;
  readonly env: NodeJS.ProcessEnv;
  readonly store: BackupStore;
  /** The logger of a run on this server; its password is one of the secrets to keep out of logs. */
  readonly loggerFor: (connection: Connection) => Logger;
  readonly signal?: AbortSignal;
  readonly onPhase?: RestoreDeps['onPhase'];
  readonly onProgress?: RestoreDeps['onProgress'];
  /** The environment of a scratch server started for a drill; this process's own unless told. */
  readonly scratchEnv?: NodeJS.ProcessEnv;
  /**
   * The primary and secondary stores, nearest first: the restore reads the nearest good copy
   * ({@link planCopies}). Without them, `store` alone.
   */
  readonly stores?: readonly RoleStore[];
  /** Reads this store's copy and no other (`--from`). */
  readonly from?: StoreRole;
  /** Configured stores that could not be opened (an unmounted NAS), reported as passed over. */
  readonly unavailable?: readonly PassedOver[];
}

/**
 * Runs a restore or verify with the database's settings from the config, on the server it goes
 * to: the source server for a restore; for a drill, a scratch server of its own or the
 * configured drill server ({@link withRestoreServer}).
 */
export async function restoreFromConfig(
  request: RestoreRequest,
  wiring: RestoreWiring,
): Promise<RestoreReport> {
  const stores = wiring.stores ?? [];
  const unavailable = wiring.unavailable ?? [];
  if (stores.length < 2 && !wiring.from && unavailable.length === 0) {
    return restoreFromStore(request, wiring, wiring.store);
  }
  const plan = await planCopies(
    stores.length > 0 ? stores : [{ role: 'primary', store: wiring.store, storageClass: 'STANDARD' }],
    request.database,
    selectorOf(request),
    wiring.from,
  );
  // Every copy names the same backup: `latest` is resolved once, across the stores.
  const byId: RestoreRequest = { ...request, backup: plan.backupId };
  delete (byId as { before?: string }).before;
  const passedOver = [...unavailable, ...plan.passedOver];
  for (const [index, copy] of plan.candidates.entries()) {
    try {
      const report = await restoreFromStore(byId, wiring, copy.store);
      return { ...report, copy: { role: copy.role, url: copy.store.url, passedOver } };
    } catch (error) {
      const skipped = nextAfterCorrupt(error, plan, index);
      if (!skipped) throw error;
      passedOver.push(skipped);
    }
  }
  throw new Error('unreachable: the last candidate rethrows');
}

function restoreFromStore(
  request: RestoreRequest,
  wiring: RestoreWiring,
  store: BackupStore,
): Promise<RestoreReport> {
  const { config, env } = wiring;
  const settings = databaseSettings(config, request.database);
  return withRestoreServer(
    request,
    config,
    () => connectionFor(config, env, request.database),
    (connection, where) =>
      runRestore(request, {
        ...(where === 'scratch' ? { throwAwayServer: true } : {}),
        store,
        connection,
        policy: settings.restore,
        assertions: settings.assertions,
        env,
        logger: wiring.loggerFor(connection),
        ...(wiring.signal ? { signal: wiring.signal } : {}),
        ...(wiring.onPhase ? { onPhase: wiring.onPhase } : {}),
        ...(wiring.onProgress ? { onProgress: wiring.onProgress } : {}),
      }),
    wiring.scratchEnv ? { env: wiring.scratchEnv } : {},
  );
}
