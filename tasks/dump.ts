import { fileURLToPath } from 'node:url';
import { compressionFromConfig, runDump } from '../lib/backup/dump.js';
import { type Config, loadDeployedConfig } from '../lib/config.js';
import type { Manifest } from '../lib/domain/manifest.js';
import { sfnClient } from '../lib/platform/aws-clients/sfn.js';
import { createLogger } from '../lib/platform/logger.js';
import { connectionFor } from '../lib/postgres/connection.js';
import { openStore } from '../lib/storage/open-store.js';
import { runTask, type TaskDeps } from './task-runner.js';

/** The dump task's inputs, from the container's environment (the ECS overrides). */
export function dumpInputs(env: NodeJS.ProcessEnv): { database: string; config: Config; store?: string } {
  const database = env.PGBP_DATABASE;
  if (!database) throw new Error('PGBP_DATABASE is not set: the task needs the database to dump');
  const config = loadDeployedConfig(env);
  return { database, config, ...(env.PGBP_STORE ? { store: env.PGBP_STORE } : {}) };
}

/** The Step Functions output: the manifest without its table list, which can be long. */
export function summarizeManifest(m: Manifest): Omit<Manifest, 'tables'> & { tableCount: number } {
  const { tables, ...rest } = m;
  return { ...rest, tableCount: tables.length };
}

/** Fargate entrypoint: dump one database into the stage's store and report the manifest. */
export function main(deps: TaskDeps): Promise<number> {
  return runTask(
    async (context) => {
      const { database, config, store: storeUrl } = dumpInputs(deps.env);
      const connection = await connectionFor(config, deps.env, database);
      context.secrets.push(connection.password);
      const logger = createLogger({ task: 'dump' }, { secrets: [connection.password ?? ''] });
      return runDump(
        {
          database,
          connection,
          store: await openStore(storeUrl ?? config.store, config),
          compression: compressionFromConfig(config),
          storageClass: config.storageClass,
        },
        { env: deps.env, logger, signal: context.signal },
      );
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
