import { fileURLToPath } from 'node:url';
import { type Config, loadDeployedConfig } from '../lib/config.js';
import { InvalidRestoreRequestError } from '../lib/domain/errors.js';
import { type RestoreReport, rowsRestored } from '../lib/domain/verify-report.js';
import { sfnClient } from '../lib/platform/aws-clients/sfn.js';
import { createLogger } from '../lib/platform/logger.js';
import { parseRestoreRequest, type RestoreRequest } from '../lib/restore/request.js';
import { restoreFromConfig } from '../lib/restore/wiring.js';
import { openStoresFor } from '../lib/storage/store-roles.js';
import { runTask, type TaskDeps } from './task-runner.js';

/** The restore task's inputs, from the container's environment (the ECS overrides). */
export function restoreInputs(env: NodeJS.ProcessEnv): {
  request: RestoreRequest;
  config: Config;
  store?: string;
} {
  const raw = env.PGBP_RESTORE_REQUEST;
  if (!raw) {
    throw new InvalidRestoreRequestError(
      'PGBP_RESTORE_REQUEST is not set: the task needs a restore request (JSON)',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (cause) {
    throw new InvalidRestoreRequestError(`PGBP_RESTORE_REQUEST is not JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  const request = parseRestoreRequest(parsed);
  const config = loadDeployedConfig(env);
  return { request, config, ...(env.PGBP_STORE ? { store: env.PGBP_STORE } : {}) };
}

/**
 * The Step Functions output: what an alert or the next state needs, small enough for the
 * 256 KiB limit whatever the number of tables. The whole report is in the store (verify).
 */
export function summarizeReport(r: RestoreReport) {
  return {
    backupId: r.backupId,
    database: r.database,
    mode: r.mode,
    target: r.target,
    passed: r.passed,
    recoverySeconds: r.recoverySeconds,
    timings: r.timings,
    bytesFetched: r.bytesFetched,
    jobs: r.jobs,
    spooled: r.spooled,
    replaced: r.replaced,
    tableCount: r.tables.length,
    rowCount: rowsRestored(r),
    checks: r.checks.map((c) => ({ name: c.name, kind: c.kind, passed: c.passed })),
    ...(r.globals
      ? {
          globals: {
            rolesCreated: r.globals.rolesCreated.length,
            rolesLeftAlone: r.globals.rolesLeftAlone.length,
            failed: r.globals.failed.length,
          },
        }
      : {}),
    ...(r.ownership
      ? {
          ownership: {
            owners: r.ownership.owners,
            privileges: r.ownership.privileges,
            missingRoles: r.ownership.missingRoles,
          },
        }
      : {}),
    warningCount: r.warnings.length,
    warnings: r.warnings.slice(0, 10),
    // With two stores: which copy was read, and why another was passed over.
    ...(r.copy ? { copy: r.copy } : {}),
  };
}

/** Fargate entrypoint: verify a backup, or restore one into a named database, and report. */
export function main(deps: TaskDeps): Promise<number> {
  return runTask(
    async (context) => {
      const { request, config, store: storeUrl } = restoreInputs(deps.env);
      // The nearest good copy of the backup, the primary's first (PGBP_STORE: that store alone).
      const stores = await openStoresFor(config, storeUrl);
      const primary = stores[0];
      if (!primary) throw new Error('no store configured');
      // A drill (verify) restores into a scratch server of its own or the configured drill
      // server: it never loads the source server unless the config says so.
      return restoreFromConfig(request, {
        config,
        env: deps.env,
        store: primary.store,
        stores,
        loggerFor: (connection) => {
          context.secrets.push(connection.password);
          return createLogger(
            { task: 'restore' },
            { secrets: [connection.password ?? ''], write: (line) => deps.stderr.write(`${line}\n`) },
          );
        },
        signal: context.signal,
        scratchEnv: deps.env,
      });
    },
    deps,
    summarizeReport,
    'the restore task',
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main({ env: process.env, stdout: process.stdout, stderr: process.stderr, sfn: sfnClient }).then((code) => {
    process.exitCode = code;
  });
}
