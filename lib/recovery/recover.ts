import { execFileSync } from 'node:child_process';
import type { Assertion } from '../config.js';
import { evaluateAssertion } from '../domain/assertions.js';
import { describeTarget, type RecoveryTarget, targetSettings } from '../domain/base-backup.js';
import { RecoveryFailedError } from '../domain/errors.js';
import type { CheckResult } from '../domain/restore-checks.js';
import type { CopyUsed, PassedOver, StoreRole } from '../domain/store-roles.js';
import type { Reachable } from '../domain/wal-continuity.js';
import type { Logger } from '../platform/logger.js';
import type { Spawn } from '../platform/processes.js';
import { type Connection, pgClient, quoteIdent } from '../postgres/pg-tools.js';
import { runAssertion } from '../restore/checks.js';
import type { BackupStore } from '../storage/store.js';
import type { RoleStore } from '../storage/store-roles.js';
import { type BaseCopy, nextBaseCopy, planBaseCopies } from './copies.js';
import { checkDataDirectory, extractBaseBackup, writeRecoverySettings } from './data-directory.js';
import { planRecovery, type RecoveryPlan } from './plan.js';
import { type RecoveringServer, replaySummary, startServer, waitForPromotion } from './server.js';

/**
 * Point-in-time recovery of a whole cluster into a new data directory: the newest base backup
 * before the target (or the one named), checked against the archive before anything is
 * written, extracted with its digest verified, and the PostgreSQL 12+ recovery settings
 * written (restore_command = pgbp wal-fetch, the target, timeline 'latest', promote). With
 * `start`, the server is started on a port, followed until it promotes, and checked.
 */

export interface DatabaseAssertions {
  readonly database: string;
  readonly assertions: readonly Assertion[];
}

export interface StartOptions {
  readonly port: number;
  /** Who connects to the recovered server (its roles are the source's), on 127.0.0.1:port. */
  readonly connection: Connection;
  readonly timeoutMs: number;
  /** The configured assertions, run on each database the recovered cluster holds. */
  readonly assertions: readonly DatabaseAssertions[];
  /** Stop the server after the checks (a drill); an operator's recovery keeps it running. */
  readonly stopAfter?: boolean;
}

export interface RecoverRequest {
  readonly cluster: string;
  readonly store: BackupStore;
  /**
   * The primary and secondary stores, nearest first: the recovery reads the nearest good copy
   * of the base backup ({@link planBaseCopies}), and checks the archive over the WAL of them all,
   * which its wal-fetch reads the nearest good copy of. Without them, `store` alone.
   */
  readonly stores?: readonly RoleStore[];
  /** Reads this store's copy and WAL and no other (`--from`; `restoreCommand` reads it alone too). */
  readonly from?: StoreRole;
  /** Configured stores that could not be opened (an unmounted NAS), reported as passed over. */
  readonly unavailable?: readonly PassedOver[];
  readonly pgdata: string;
  readonly target: RecoveryTarget;
  readonly baseId?: string;
  /** restore_command: pgbp wal-fetch with this config (`%f %p` included). */
  readonly restoreCommand: string;
  /** More settings for the recovered server (a drill's port, sockets, no archiving). */
  readonly settings?: Readonly<Record<string, string>>;
  /** When this process is root: the OS user the server runs as, who gets the files. */
  readonly osUser?: string;
  readonly start?: StartOptions;
}

export interface RecoverDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
  readonly spawn?: Spawn;
  readonly clock?: () => Date;
  readonly onProgress?: (phase: string, bytes?: number) => void;
}

export interface RecoveryReport {
  readonly cluster: string;
  readonly baseId: string;
  readonly baseStopTime: string;
  /** Which store's copy of the base backup was read, and why another was passed over (two stores). */
  readonly copy?: CopyUsed;
  readonly target: string;
  readonly targetKind: RecoveryTarget['kind'];
  readonly pgdata: string;
  /** The furthest point the archive reaches from the base backup, as checked before the recovery. */
  readonly reachable: Reachable;
  readonly timelineFollowed: number;
  readonly startedAt: string;
  /** Whether the server was started and reached its target (only with `start`). */
  readonly started: boolean;
  readonly port?: number;
  readonly promotedAt?: string;
  /** The time of the last transaction replayed: the recovery point reached. */
  readonly recoveryPoint?: string | null;
  /** PostgreSQL's words on where it stopped (`recovery stopping before commit of transaction …`). */
  readonly stoppedAt?: string;
  /** The timeline the promoted server writes on. */
  readonly timeline?: number;
  readonly segmentsReplayed?: number;
  /** From the start of the recovery to the end of the checks. */
  readonly rtoSeconds?: number;
  readonly checks: readonly CheckResult[];
  readonly passed: boolean;
  /** How to start the server, when it was not started here. */
  readonly startWith?: string;
}

function osIds(user: string): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Recovers the cluster into `pgdata`; see the module comment. Refusals write nothing. */
export async function recover(request: RecoverRequest, deps: RecoverDeps): Promise<RecoveryReport> {
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = Date.now();
  const log = deps.logger.child({ cluster: request.cluster });

  const target = await checkDataDirectory(request.pgdata);
  const stores = request.stores?.length
    ? request.stores
    : [{ role: 'primary' as const, store: request.store, storageClass: 'STANDARD' }];
  const unavailable = request.unavailable ?? [];
  const choosing = stores.length > 1 || request.from !== undefined || unavailable.length > 0;
  const copies = await planBaseCopies(stores, request.cluster, request.target, {
    ...(request.baseId ? { baseId: request.baseId } : {}),
    ...(request.from ? { from: request.from } : {}),
  });
  const passedOver = [...unavailable, ...copies.passedOver];
  // The stores the recovered server's wal-fetch reads (the restore_command the caller built for
  // the same choice): the archive is continuous when their WAL together is.
  const archives = request.from ? stores.filter((s) => s.role === request.from) : stores;

  const isRoot = process.getuid?.() === 0;
  const runAs = isRoot ? (request.osUser ?? 'postgres') : undefined;
  const settings: Record<string, string> = {
    restore_command: request.restoreCommand,
    recovery_target_timeline: 'latest',
    ...targetSettings(request.target),
    ...(request.target.kind === 'latest' ? {} : { recovery_target_action: 'promote' }),
    ...(request.start ? { port: String(request.start.port) } : {}),
    ...request.settings,
  };
  let plan: RecoveryPlan | undefined;
  let used: BaseCopy | undefined;
  for (const [index, copy] of copies.candidates.entries()) {
    try {
      plan = await planRecovery(copy.store, request.cluster, request.target, {
        env: deps.env,
        baseId: copies.baseId,
        archives,
      });
      log.info('recovery planned', {
        baseId: plan.base.id,
        role: copy.role,
        target: describeTarget(request.target),
        reachable: plan.continuity.reachable.lsn,
      });
      deps.onProgress?.('fetching the base backup');
      // A copy found damaged part-way leaves --pgdata as it was (extraction goes into a
      // temporary directory beside it), so the next copy starts from the same empty directory.
      await extractBaseBackup(copy.store, plan.base, target, {
        env: deps.env,
        ...(deps.spawn ? { spawn: deps.spawn } : {}),
        ...(runAs ? { owner: osIds(runAs) } : {}),
        prepare: (dir) => writeRecoverySettings(dir, settings),
        ...(deps.onProgress
          ? { onProgress: (b: number) => deps.onProgress?.('fetching the base backup', b) }
          : {}),
      });
      used = copy;
      break;
    } catch (error) {
      const skipped = nextBaseCopy(error, copies, index);
      if (!skipped) throw error;
      log.warn('base backup copy passed over', {
        role: skipped.role,
        store: skipped.url,
        reason: skipped.reason,
      });
      passedOver.push(skipped);
    }
  }
  if (!plan || !used) throw new Error('unreachable: the last copy rethrows');
  log.info('base backup written', { baseId: plan.base.id, pgdata: target.path });

  const base = {
    cluster: request.cluster,
    baseId: plan.base.id,
    baseStopTime: plan.base.stopTime,
    target: describeTarget(request.target),
    targetKind: request.target.kind,
    pgdata: target.path,
    ...(choosing ? { copy: { role: used.role, url: used.store.url, passedOver } } : {}),
    reachable: plan.continuity.reachable,
    timelineFollowed: plan.continuity.targetTimeline,
    startedAt: startedAt.toISOString(),
  };
  if (!request.start) {
    const as = runAs ? `runuser -u ${runAs} -- ` : '';
    return {
      ...base,
      started: false,
      checks: [],
      passed: true,
      startWith: `${as}pg_ctl -D ${target.path} -l ${target.path}/pgbp-recovery.log start`,
    };
  }

  const start = request.start;
  const serverOptions = {
    env: deps.env,
    ...(deps.spawn ? { spawn: deps.spawn } : {}),
    ...(runAs ? { runAs } : {}),
  };
  deps.onProgress?.('replaying WAL');
  const server = await startServer(target.path, start.port, serverOptions);
  let stopped = false;
  const stop = async (s: RecoveringServer) => {
    if (stopped) return;
    stopped = true;
    await s.stop().catch(() => {});
  };
  try {
    const { promotedAt } = await waitForPromotion(server, start.connection, start.timeoutMs, serverOptions);
    const replay = await replaySummary(server.log);
    if (request.target.kind !== 'latest' && !replay.stoppedAt) {
      throw new RecoveryFailedError(
        `the server promoted without stopping at ${describeTarget(request.target)}: the target was not reached (log: ${server.log})`,
      );
    }
    deps.onProgress?.('checking');
    const facts = await recoveredFacts(start.connection, start.port);
    const checks = await runChecks(start, facts.databases);
    const passed = checks.every((c) => c.passed);
    const report: RecoveryReport = {
      ...base,
      started: true,
      port: start.port,
      promotedAt: promotedAt.toISOString(),
      recoveryPoint: facts.recoveryPoint,
      ...(replay.stoppedAt ? { stoppedAt: replay.stoppedAt } : {}),
      timeline: facts.timeline,
      segmentsReplayed: replay.segmentsReplayed,
      rtoSeconds: (Date.now() - t0) / 1000,
      checks,
      passed,
    };
    log.info('recovery complete', { baseId: plan.base.id, rtoSeconds: report.rtoSeconds, passed });
    if (start.stopAfter) await stop(server);
    return report;
  } catch (error) {
    if (start.stopAfter) await stop(server);
    throw error;
  }
}

interface RecoveredFacts {
  readonly recoveryPoint: string | null;
  readonly timeline: number;
  readonly databases: readonly string[];
}

async function recoveredFacts(connection: Connection, port: number): Promise<RecoveredFacts> {
  const client = await pgClient({ ...connection, host: '127.0.0.1', port });
  await client.connect();
  try {
    const r = await client.query<{ point: Date | null; wal: string }>(
      'select pg_last_xact_replay_timestamp() as point, pg_walfile_name(pg_current_wal_lsn()) as wal',
    );
    const dbs = await client.query<{ datname: string }>(
      'select datname from pg_database where datallowconn and not datistemplate order by 1',
    );
    const row = r.rows[0];
    return {
      recoveryPoint: row?.point ? new Date(row.point).toISOString() : null,
      timeline: Number.parseInt((row?.wal ?? '').slice(0, 8), 16),
      databases: dbs.rows.map((d) => d.datname),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The configured assertions of every database the recovered cluster holds; a configured one missing fails. */
async function runChecks(start: StartOptions, databases: readonly string[]): Promise<CheckResult[]> {
  const checks: CheckResult[] = [];
  for (const { database, assertions } of start.assertions) {
    if (!databases.includes(database)) {
      checks.push({
        name: `${database}: present`,
        kind: 'connect',
        passed: false,
        value: 'not in the recovered cluster',
      });
      continue;
    }
    const client = await pgClient({ ...start.connection, host: '127.0.0.1', port: start.port, database });
    try {
      await client.connect();
      checks.push({ name: `${database}: connect`, kind: 'connect', passed: true });
      for (const assertion of assertions) {
        const result = evaluateAssertion(assertion, await runAssertion(client, assertion));
        checks.push({ ...result, name: `${database}: ${result.name}` });
      }
    } catch (error) {
      checks.push({
        name: `${database}: connect`,
        kind: 'connect',
        passed: false,
        value: (error as Error).message,
        query: `connect to ${quoteIdent(database)}`,
      });
    } finally {
      await client.end().catch(() => {});
    }
  }
  return checks;
}
