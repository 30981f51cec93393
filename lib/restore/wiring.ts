import { type Config, databaseSettings } from '../config.js';
import type { RestoreReport } from '../domain/verify-report.js';
import type { Logger } from '../platform/logger.js';
import { connectionFor } from '../postgres/connection.js';
import type { Connection } from '../postgres/pg-tools.js';
import type { BackupStore } from '../storage/store.js';
import type { RestoreDeps } from './context.js';
import { withRestoreServer } from './drill-target.js';
import type { RestoreRequest } from './request.js';
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
}

/**
 * Runs a restore or verify with the database's settings from the config, on the server it goes
 * to: the source server for a restore; for a drill, a scratch server of its own or the
 * configured drill server ({@link withRestoreServer}).
 */
export function restoreFromConfig(request: RestoreRequest, wiring: RestoreWiring): Promise<RestoreReport> {
  const { config, env } = wiring;
  const settings = databaseSettings(config, request.database);
  return withRestoreServer(
    request,
    config,
    () => connectionFor(config, env, request.database),
    (connection) =>
      runRestore(request, {
        store: wiring.store,
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
