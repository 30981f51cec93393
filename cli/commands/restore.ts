import type { Command } from 'commander';
import { keysFor } from '../../lib/domain/backup-layout.js';
import { RestoreCheckFailedError } from '../../lib/domain/errors.js';
import { redact } from '../../lib/domain/redact.js';
import { formatBytes } from '../../lib/domain/units.js';
import { type RestoreReport, rowsRestored } from '../../lib/domain/verify-report.js';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import { parseRestoreRequest } from '../../lib/restore/request.js';
import { restoreFromConfig } from '../../lib/restore/wiring.js';
import { type CliDeps, type CommonOptions, type ExitHolder, err, out } from '../context.js';
import { finish, type MachineOptions, restoreSummary, runMachine } from '../machine-command.js';
import { progressLine } from '../progress.js';
import { resolveConfig, resolveStore } from '../resolve.js';

/** The exit code of a restore that ran but whose checks failed (1 is any other failure). */
export const CHECKS_FAILED_EXIT = 2;

export interface RestoreCommandOptions extends CommonOptions {
  readonly database: string;
  readonly before?: string;
  readonly jobs?: string;
  readonly depth?: string;
  readonly verbose?: boolean;
}

function summary(report: RestoreReport, storePath: string): string {
  const t = report.timings;
  const rows = rowsRestored(report);
  const passed = report.checks.filter((c) => c.passed).length;
  const what =
    report.mode === 'verify' ? 'verified' : report.replaced ? 'restored, replacing' : 'restored into';
  const into = report.mode === 'verify' ? `(scratch database dropped, report ${storePath})` : report.target;
  return [
    `${report.backupId}: ${what} ${into}`,
    `${report.recoverySeconds.toFixed(1)} s (fetch ${t.fetchSeconds.toFixed(1)} s, restore ${t.restoreSeconds.toFixed(1)} s, checks ${t.checksSeconds.toFixed(1)} s)`,
    `${formatBytes(report.bytesFetched)}, ${report.jobs} job${report.jobs > 1 ? 's' : ''}${report.spooled ? ' from a spool' : ''}`,
    `${report.tables.length} tables, ${rows} rows`,
    `${passed}/${report.checks.length} checks passed`,
    ...(report.warnings.length > 0
      ? [`${report.warnings.length} warning(s): ${report.warnings.slice(0, 3).join(' | ')}`]
      : []),
  ].join(', ');
}

/**
 * Runs a verify or restore for the CLI: validates the request before touching anything, shows
 * progress on a terminal, prints the report (`--json`) or one line. Exit 0 only when every
 * check passed.
 */
export async function runRestoreCommand(
  deps: CliDeps,
  exit: ExitHolder,
  raw: Record<string, unknown>,
  opts: RestoreCommandOptions,
): Promise<void> {
  const request = parseRestoreRequest(raw);
  const config = resolveConfig(deps, opts.config);
  const store = await resolveStore(deps, config, opts.store);
  const progress = progressLine(deps.stderr, !opts.json);
  let bytes = 0;
  let password: string | undefined;
  let report: RestoreReport;
  try {
    // A verify restores into a scratch server (or the configured drill server), not the source.
    report = await restoreFromConfig(request, {
      config,
      env: deps.env,
      store,
      loggerFor: (connection) => {
        password = connection.password;
        return opts.verbose
          ? createLogger({ command: request.mode }, { secrets: [connection.password ?? ''] })
          : silentLogger;
      },
      ...(deps.signal ? { signal: deps.signal } : {}),
      onPhase: (phase) => {
        progress.phase(`${request.mode} ${request.database}: ${phase}`);
        progress.update(bytes);
      },
      onProgress: (n) => {
        bytes = n;
        progress.update(n);
      },
    });
  } catch (error) {
    progress.done();
    if (!(error instanceof RestoreCheckFailedError && error.report)) throw error;
    if (opts.json) out(deps, JSON.stringify(error.report));
    err(deps, `pgbp: ${error.name}: ${redact(error.message, [password])}`);
    exit.code = CHECKS_FAILED_EXIT;
    return;
  }
  progress.done();
  if (opts.json) {
    out(deps, JSON.stringify(report));
    return;
  }
  const key = keysFor(store.prefix, report.backupId).verify;
  out(deps, summary(report, `${store.url}/${key.slice(store.prefix ? store.prefix.length + 1 : 0)}`));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerRestore(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('restore')
    .description('Restore a backup into a new database (whole or by schema), then check it')
    .argument('<backup>', 'a backup id, or "latest"')
    .requiredOption('--database <name>', 'the database whose backups to use (configured or not)')
    .requiredOption('--target-db <name>', 'the database to create; never the source')
    .option('--schema <name>', 'restore only this schema (repeat for several)', collect, [])
    .option('--jobs <n>', 'parallel pg_restore jobs (spools to local disk when there is room)')
    .option('--before <time>', 'with "latest": the newest backup taken before this ISO 8601 time')
    .option(
      '--replace',
      'replace the target if it exists: swapped in only after the new one passed its checks',
    )
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the restore report as one JSON object')
    .option('--verbose', 'structured log lines on stderr')
    .option(
      '--via-state-machine',
      'run statemachines/restore.asl.yml on this machine: prepare, thaw if archived, restore, notify',
    )
    .option(
      '--aws',
      'start the deployed restore state machine and follow it (the default when the config says mode: aws)',
    )
    .option(
      '--state-machine-arn <arn>',
      'AWS mode: this machine instead of pg-backup-pipeline-<stage>-restore',
    )
    .action(
      async (
        backup: string,
        opts: RestoreCommandOptions &
          MachineOptions & {
            targetDb: string;
            schema: string[];
            replace?: boolean;
            viaStateMachine?: boolean;
          },
      ) => {
        if (opts.viaStateMachine || opts.aws || resolveConfig(deps, opts.config).mode === 'aws') {
          // The machine's input, as an operator would paste it in the console (docs/RUNBOOK.md).
          const input = {
            database: opts.database,
            backup,
            targetDatabase: opts.targetDb,
            ...(opts.schema.length > 0 ? { schemas: opts.schema } : {}),
            ...(opts.jobs !== undefined
              ? { jobs: /^\d+$/.test(opts.jobs) ? Number(opts.jobs) : opts.jobs }
              : {}),
            ...(opts.before !== undefined ? { before: opts.before } : {}),
            ...(opts.replace ? { replace: true } : {}),
          };
          const result = await runMachine(deps, 'restore', input, opts);
          finish(deps, exit, result, opts, restoreSummary(result));
          return;
        }
        await runRestoreCommand(
          deps,
          exit,
          {
            mode: 'restore',
            database: opts.database,
            backup,
            targetDatabase: opts.targetDb,
            schemas: opts.schema,
            replace: opts.replace ?? false,
            ...(opts.before !== undefined ? { before: opts.before } : {}),
            ...(opts.jobs !== undefined ? { jobs: opts.jobs } : {}),
          },
          opts,
        );
      },
    );
}
