import { fileURLToPath } from 'node:url';
import { baseBackupSettings, runBaseBackup } from '../lib/backup/base-backup.js';
import { loadDeployedConfig } from '../lib/config.js';
import { sfnClient } from '../lib/platform/aws-clients/sfn.js';
import { createLogger } from '../lib/platform/logger.js';
import { connectionFor } from '../lib/postgres/connection.js';
import { openStore } from '../lib/storage/open-store.js';
import { runTask, type TaskDeps } from './task-runner.js';

/** Fargate entrypoint: one base backup of the stage's cluster into its store; reports the manifest. */
export function main(deps: TaskDeps): Promise<number> {
  return runTask(async (context) => {
    const config = loadDeployedConfig(deps.env);
    const settings = baseBackupSettings(config);
    const connection = await connectionFor(config, deps.env, deps.env.PGDATABASE ?? 'postgres');
    context.secrets.push(connection.password);
    const logger = createLogger({ task: 'base-backup' }, { secrets: [connection.password ?? ''] });
    return runBaseBackup(
      { ...settings, connection, store: await openStore(deps.env.PGBP_STORE ?? config.store, config) },
      { env: deps.env, logger },
    );
  }, deps);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main({ env: process.env, stdout: process.stdout, stderr: process.stderr, sfn: sfnClient }).then((code) => {
    process.exitCode = code;
  });
}
