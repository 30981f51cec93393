// A verify or a restore run from the CLI: loaded by `pgbp restore` and `pgbp verify` when they
// run, so that their registration and help load no restore machinery.
import { keysFor } from '../../lib/domain/backup-layout.js';
import { InvalidRestoreRequestError, RestoreCheckFailedError } from '../../lib/domain/errors.js';
import { redact } from '../../lib/domain/redact.js';
import { describeCopyUsed, STORE_ROLES, type StoreRole } from '../../lib/domain/store-roles.js';
import { formatBytes } from '../../lib/domain/units.js';
import { type RestoreReport, rowsRestored } from '../../lib/domain/verify-report.js';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import { parseRestoreRequest } from '../../lib/restore/request.js';
import { restoreFromConfig } from '../../lib/restore/wiring.js';
import type { RoleStore } from '../../lib/storage/store-roles.js';
import { type CliDeps, type CommonOptions, type ExitHolder, err, out } from '../context.js';
import { progressLine } from '../progress.js';
import { resolveConfig, resolveReadableStores } from '../resolve.js';

/** The exit code of a restore that ran but whose checks failed (1 is any other failure). */
export const CHECKS_FAILED_EXIT = 2;

export interface RestoreCommandOptions extends CommonOptions {
  readonly database: string;
  readonly before?: string;
  readonly jobs?: string;
  readonly depth?: string;
  readonly verbose?: boolean;
  /** Read this store's copy only: primary or secondary. */
  readonly from?: string;
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
    ...(report.globals
      ? [
          `globals: ${report.globals.rolesCreated.length} role(s) created, ${report.globals.rolesLeftAlone.length} left as they were${report.globals.failed.length > 0 ? `, ${report.globals.failed.length} failed` : ''}`,
        ]
      : []),
    ...(report.ownership && (report.ownership.owners !== 'kept' || report.ownership.privileges !== 'kept')
      ? [
          `owners ${report.ownership.owners}, privileges ${report.ownership.privileges}${report.ownership.missingRoles.length > 0 ? ` (roles missing in the target: ${report.ownership.missingRoles.join(', ')})` : ''}`,
        ]
      : []),
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
  const from = fromOption(opts.from);
  const { stores, unavailable } = await resolveReadableStores(deps, config, opts.store, from);
  const store = (stores[0] as RoleStore).store;
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
      stores,
      unavailable,
      ...(from ? { from } : {}),
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
  // Which copy was read, and why another was passed over: said whenever there was a choice.
  if (report.copy) err(deps, `${report.backupId}: ${describeCopyUsed(report.copy)}`);
  if (opts.json) {
    out(deps, JSON.stringify(report));
    return;
  }
  const used = stores.find((s) => s.store.url === report.copy?.url)?.store ?? store;
  const key = keysFor(used.prefix, report.backupId).verify;
  out(deps, summary(report, `${used.url}/${key.slice(used.prefix ? used.prefix.length + 1 : 0)}`));
}

/** `--from primary|secondary`, checked. */
function fromOption(value: string | undefined): StoreRole | undefined {
  if (value === undefined) return undefined;
  if (!(STORE_ROLES as readonly string[]).includes(value)) {
    throw new InvalidRestoreRequestError(
      `--from: expected primary or secondary, got ${JSON.stringify(value)}`,
    );
  }
  return value as StoreRole;
}
