import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError } from '../lib/domain/errors.js';
import { formatBytes } from '../lib/domain/units.js';
import { createLogger, silentLogger } from '../lib/platform/logger.js';
import { createAlerter } from '../lib/runtime.js';
import { type Json, MACHINES, type MachineName } from '../lib/state-machines.js';
import { runAwsExecution } from './aws-runner.js';
import { type CliDeps, type ExitHolder, out } from './context.js';
import { type ExecutionResult, executionJson, formatEnd, stepPrinter } from './executions.js';
import { runLocalExecution } from './local-runner.js';
import type { MachineOptions } from './machine-options.js';
import { BUILT_IN_CONFIG, configFileOf, resolveConfig, resolveStores } from './resolve.js';

export type { MachineOptions };

/**
 * Runs one execution of a machine: in-process from statemachines/ (local mode), or on Step
 * Functions (config `mode: aws`, or --aws). Prints each state as it runs unless --json.
 */
export async function runMachine(
  deps: CliDeps,
  machine: MachineName,
  input: Json,
  opts: MachineOptions,
): Promise<ExecutionResult> {
  const config = resolveConfig(deps, opts.config);
  const named = asObject(input)?.databases;
  if (machine !== 'restore' && named === undefined && config.databases.length === 0) {
    throw new ConfigError(
      `${configFileOf(deps, opts.config) ?? '(built-in defaults)'}: databases: lists none for the ${machine} machine; configure them or pass --database`,
    );
  }
  const onStep = stepPrinter(deps, opts.json);
  const aws = opts.aws === true || config.mode === 'aws';
  if (aws) {
    if (opts.store)
      throw new RangeError('--store applies to local runs: a deployed machine uses its stage’s bucket');
    if (!opts.json) out(deps, `${machine}: starting the deployed state machine of stage ${config.stage}`);
    return runAwsExecution({
      machine,
      input,
      config,
      onStep,
      ...(opts.stateMachineArn ? { stateMachineArn: opts.stateMachineArn } : {}),
    });
  }
  const [primary, secondaryStore] = await resolveStores(
    deps,
    config,
    opts.store,
    machine === 'backup' ? 'write' : 'read',
  );
  const store = (primary as NonNullable<typeof primary>).store;
  if (!opts.json)
    out(deps, `${machine}: running ${MACHINES[machine].file} on this machine, store ${store.url}`);
  const secrets = [deps.env.PGPASSWORD ?? ''];
  const write = (line: string) => deps.stderr.write(`${line}\n`);
  // The task processes load the config from a file; the built-in defaults get a temporary one.
  let configFile = configFileOf(deps, opts.config);
  let temp: string | undefined;
  if (!configFile) {
    temp = mkdtempSync(join(tmpdir(), 'pgbp-config-'));
    configFile = join(temp, 'local.yml');
    writeFileSync(configFile, stringify(BUILT_IN_CONFIG));
  }
  try {
    return await runLocalExecution({
      machine,
      input,
      config,
      configFile,
      store,
      ...(secondaryStore ? { secondary: secondaryStore.store } : {}),
      env: deps.env,
      cwd: deps.cwd,
      alerter: createAlerter(config, deps.env, (text) => deps.stderr.write(text)),
      logger: opts.verbose ? createLogger({ machine }, { write, secrets }) : silentLogger,
      ...(opts.verbose ? { taskLog: write } : {}),
      ...(deps.signal ? { signal: deps.signal } : {}),
      onStep,
    });
  } finally {
    if (temp) rmSync(temp, { recursive: true, force: true });
  }
}

/** Prints the summary lines and the end (or the JSON), and sets the exit code: 1 when the execution failed. */
export function finish(
  deps: CliDeps,
  exit: ExitHolder,
  result: ExecutionResult,
  opts: MachineOptions,
  summary: { readonly data: unknown; readonly lines: readonly string[] },
): void {
  if (opts.json) out(deps, executionJson(result, summary.data, [deps.env.PGPASSWORD]));
  else {
    for (const line of summary.lines) out(deps, line);
    out(deps, formatEnd(result, [deps.env.PGPASSWORD]));
  }
  if (result.status !== 'SUCCEEDED') exit.code = 1;
}

type Obj = Record<string, unknown>;

function asObject(value: unknown): Obj | undefined {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : undefined;
}

function lengthOf(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}

function errorText(error: unknown): string {
  const e = asObject(error);
  if (!e) return 'failed';
  const cause = typeof e.Cause === 'string' ? e.Cause.split('\n')[0]?.slice(0, 200) : '';
  return `${String(e.Error ?? 'Error')}${cause ? `: ${cause}` : ''}`;
}

/** A Map state's per-database results, as it left them (even when the execution failed later). */
function mapResults(result: ExecutionResult, mapState: string): Obj[] {
  const results = asObject(result.stateOutputs[mapState])?.results;
  return Array.isArray(results)
    ? results.flatMap((r) => {
        const o = asObject(r);
        return o ? [o] : [];
      })
    : [];
}

/** What a backup execution did: each database's backup and size verdict, and what retention kept and deleted. */
export function backupSummary(result: ExecutionResult) {
  const databases = mapResults(result, 'BackupDatabases').map((r) => {
    const size = asObject(r.size);
    return {
      database: String(r.database),
      status: String(r.status),
      ...(r.backupId ? { backupId: String(r.backupId) } : {}),
      ...(typeof r.sizeBytes === 'number' ? { sizeBytes: r.sizeBytes } : {}),
      ...(size ? { size: { status: String(size.status), reasons: (size.reasons as string[]) ?? [] } } : {}),
      ...(r.error ? { error: asObject(r.error) ?? {} } : {}),
    };
  });
  const retentionOut = asObject(asObject(result.stateOutputs.ApplyRetention)?.retention);
  const reports = Array.isArray(retentionOut?.databases) ? (retentionOut.databases as Obj[]) : [];
  const retention = reports.map((r) => ({
    database: String(r.database),
    ...(typeof r.role === 'string' ? { role: r.role, store: String(r.store) } : {}),
    kept: Array.isArray(r.kept) ? r.kept.length : 0,
    deleted:
      typeof r.removeCount === 'number' ? r.removeCount : Array.isArray(r.remove) ? r.remove.length : 0,
    debris: lengthOf(asObject(r.debris)?.remove),
    blocked: typeof r.blocked === 'string' ? r.blocked : null,
  }));
  const lines = ['', 'Backups:'];
  for (const d of databases) {
    if (d.status === 'succeeded' || d.status === 'degraded') {
      const size = d.size
        ? `size ${d.size.status}${d.size.reasons.length ? ` (${d.size.reasons.join('; ')})` : ''}`
        : '';
      lines.push(
        `  ${d.database}  ${d.backupId ?? ''}  ${d.sizeBytes !== undefined ? formatBytes(d.sizeBytes) : ''}  ${size}${d.status === 'degraded' ? '  DEGRADED: in one store only (alerted; pgbp sync copies it)' : ''}`.trimEnd(),
      );
    } else lines.push(`  ${d.database}  FAILED  ${errorText(d.error)}`);
  }
  if (databases.length === 0) lines.push('  none');
  lines.push('Retention:');
  for (const r of retention) {
    lines.push(
      `  ${r.database}${r.role ? ` (${r.role} store ${r.store})` : ''}: keep ${r.kept}, deleted ${r.deleted} backup${r.deleted === 1 ? '' : 's'} and ${r.debris} debris${r.blocked ? `; blocked: ${r.blocked}` : ''}`,
    );
  }
  if (retention.length === 0)
    lines.push(result.stateOutputs.ApplyRetention ? '  nothing to do' : '  did not run');
  return { data: { databases, retention }, lines };
}

/** What a drill did: each database's verified backup and its recovery time, or why it failed. */
export function drillSummary(result: ExecutionResult) {
  const databases = mapResults(result, 'DrillDatabases').map((r) => ({
    database: String(r.database),
    status: String(r.status),
    ...(r.backupId ? { backupId: String(r.backupId) } : {}),
    ...(typeof r.recoverySeconds === 'number' ? { recoverySeconds: r.recoverySeconds } : {}),
    ...(r.error ? { error: asObject(r.error) ?? {} } : {}),
  }));
  const lines = ['', 'Restore checks:'];
  for (const d of databases) {
    lines.push(
      d.status === 'verified'
        ? `  ${d.database}  ${d.backupId ?? ''}  restored and checked, RTO ${d.recoverySeconds?.toFixed(1) ?? '?'} s`
        : `  ${d.database}  FAILED  ${errorText(d.error)}`,
    );
  }
  if (databases.length === 0) lines.push('  none');
  return { data: { databasesChecked: databases.length, databases }, lines };
}

/** What a manual restore did: the backup, the target, its recovery time and checks. */
export function restoreSummary(result: ExecutionResult) {
  const output = asObject(result.output);
  const report = asObject(output?.report);
  const prepared = asObject(asObject(result.stateOutputs.Prepare)?.prepared);
  const backupId = String(output?.backupId ?? prepared?.backupId ?? '');
  if (!report) {
    return {
      data: { backupId: backupId || null, restored: false },
      lines: backupId ? ['', `Backup ${backupId} was not restored.`] : [],
    };
  }
  const checks = Array.isArray(report.checks) ? (report.checks as Obj[]) : [];
  const passed = checks.filter((c) => c.passed === true).length;
  const seconds = typeof report.recoverySeconds === 'number' ? report.recoverySeconds : undefined;
  return {
    data: {
      backupId,
      restored: true,
      target: String(report.target),
      recoverySeconds: seconds ?? null,
      checks: { passed, total: checks.length },
    },
    lines: [
      '',
      `${backupId}: restored into ${String(report.target)}, RTO ${seconds?.toFixed(1) ?? '?'} s, ${passed}/${checks.length} checks passed`,
    ],
  };
}
