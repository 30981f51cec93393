import { fileURLToPath } from 'node:url';
import { findConfigFile, loadConfig } from '../lib/config.js';
import { sfnClient } from '../lib/platform/aws-clients/sfn.js';
import { createLogger } from '../lib/platform/logger.js';
import { connectionFor } from '../lib/postgres/connection.js';
import { runPitrDrill } from '../lib/recovery/drill.js';
import { restoreCommandFor } from '../lib/recovery/restore-command.js';
import { openStoresFor } from '../lib/storage/store-roles.js';
import { runTask, type TaskDeps } from './task-runner.js';

/**
 * Fargate entrypoint of the point-in-time recovery drill: the newest base backup recovered with
 * the archive into scratch storage, started, checked, reported beside the base backup, removed.
 * The image carries the PostgreSQL server of the cluster's major version.
 */
export function main(deps: TaskDeps): Promise<number> {
  return runTask(async (context) => {
    const configFile = findConfigFile(deps.env).path;
    const config = loadConfig(configFile);
    const connection = await connectionFor(config, deps.env, 'postgres');
    context.secrets.push(connection.password);
    const logger = createLogger({ task: 'pitr-drill' }, { secrets: [connection.password ?? ''] });
    const stores = await openStoresFor(config, deps.env.PGBP_STORE);
    const primary = stores[0];
    if (!primary) throw new Error('no store configured');
    return runPitrDrill(
      {
        config,
        store: primary.store,
        stores,
        connection,
        restoreCommand: restoreCommandFor(deps.env, configFile, deps.env.PGBP_STORE),
      },
      { env: deps.env, logger },
    );
  }, deps);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main({ env: process.env, stdout: process.stdout, stderr: process.stderr, sfn: sfnClient }).then((code) => {
    process.exitCode = code;
  });
}
