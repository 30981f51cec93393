import { fileURLToPath } from 'node:url';
import {
  type BaseBackupResult,
  baseBackupSettings,
  runBaseBackupToStores,
} from '../lib/backup/base-backup.js';
import { loadDeployedConfig } from '../lib/config.js';
import type { BaseManifest } from '../lib/domain/base-backup.js';
import { isDegraded } from '../lib/domain/store-roles.js';
import { sfnClient } from '../lib/platform/aws-clients/sfn.js';
import { createLogger } from '../lib/platform/logger.js';
import { connectionFor } from '../lib/postgres/connection.js';
import { openStoresFor } from '../lib/storage/store-roles.js';
import { runTask, type TaskDeps } from './task-runner.js';

/**
 * What the base-backup task reports: the manifest (the primary's, or the secondary's when only
 * that store holds it), each store's outcome, and `degraded` when a store failed while the other
 * holds the base backup (the base-backup machine alerts it).
 */
export type BaseBackupTaskResult = BaseManifest & {
  readonly copies: BaseBackupResult['copies'];
  readonly degraded: boolean;
};

/** Fargate entrypoint: one base backup of the stage's cluster into its stores; reports the manifest. */
export function main(deps: TaskDeps): Promise<number> {
  return runTask(async (context) => {
    const config = loadDeployedConfig(deps.env);
    const settings = baseBackupSettings(config);
    const connection = await connectionFor(config, deps.env, deps.env.PGDATABASE ?? 'postgres');
    context.secrets.push(connection.password);
    const logger = createLogger({ task: 'base-backup' }, { secrets: [connection.password ?? ''] });
    const [primary, secondary] = await openStoresFor(config, deps.env.PGBP_STORE);
    if (!primary) throw new Error('no store configured');
    const { manifest, copies } = await runBaseBackupToStores(
      {
        ...settings,
        connection,
        store: primary.store,
        storageClass: primary.storageClass,
        ...(secondary ? { secondary } : {}),
      },
      { env: deps.env, logger },
    );
    const result: BaseBackupTaskResult = { ...manifest, copies, degraded: isDegraded(copies) };
    return result;
  }, deps);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main({ env: process.env, stdout: process.stdout, stderr: process.stderr, sfn: sfnClient }).then((code) => {
    process.exitCode = code;
  });
}
