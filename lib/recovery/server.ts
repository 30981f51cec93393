import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { RecoveryFailedError } from '../domain/errors.js';
import { describeExit, exitedCleanly, type Spawn, startChild } from '../platform/processes.js';
import { type Connection, pgClient } from '../postgres/pg-tools.js';
import { serverTool } from '../postgres/server-tools.js';

/**
 * A recovering server, started with pg_ctl (as the data directory's OS user when this process
 * is root: PostgreSQL refuses to run as root), followed until it has promoted or given up.
 */

export interface RecoveringServer {
  readonly pgdata: string;
  readonly port: number;
  readonly log: string;
  /** Stops the server (fast, then immediate); never throws. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  /** Run pg_ctl as this OS user (through runuser): set when this process is root. */
  readonly runAs?: string;
}

function pgCtl(pgdata: string, args: readonly string[], options: ServerOptions) {
  const ctl = serverTool('pg_ctl', options.env);
  const [command, argv] = options.runAs
    ? ['runuser', ['-u', options.runAs, '--', ctl, '-D', pgdata, ...args]]
    : [ctl, ['-D', pgdata, ...args]];
  return startChild(command, argv, {
    tool: 'pg_ctl',
    env: options.env,
    ...(options.spawn ? { spawn: options.spawn } : {}),
  });
}

/** Starts the server on `port` without waiting: recovery may take long, and may fail. */
export async function startServer(
  pgdata: string,
  port: number,
  options: ServerOptions,
): Promise<RecoveringServer> {
  const log = `${pgdata}/pgbp-recovery.log`;
  const started = await pgCtl(pgdata, ['-W', '-l', log, '-o', `-p ${port}`, 'start'], options).exited;
  if (!exitedCleanly(started))
    throw new RecoveryFailedError(`the recovered server did not start: ${describeExit(started)}`);
  return {
    pgdata,
    port,
    log,
    async stop() {
      const fast = await pgCtl(pgdata, ['-w', '-t', '60', '-m', 'fast', 'stop'], options).exited;
      if (!exitedCleanly(fast))
        await pgCtl(pgdata, ['-w', '-t', '30', '-m', 'immediate', 'stop'], options).exited;
    },
  };
}

/** Whether a postmaster runs on the data directory. */
async function running(pgdata: string, options: ServerOptions): Promise<boolean> {
  return exitedCleanly(await pgCtl(pgdata, ['status'], options).exited);
}

/** The lines of the server log that say why recovery stopped or failed. */
async function logReason(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  const all = text.split('\n').filter((l) => l.trim() !== '');
  const telling = all.filter((l) =>
    /FATAL|PANIC|recovery stopping|recovery ended|could not|invalid|restore_command/i.test(l),
  );
  return (telling.length > 0 ? telling : all).slice(-6).join(' | ').replace(/\s+/g, ' ');
}

/** How long a server just started may take to show up as running. */
const STARTING_GRACE_MS = 30_000;

export interface Promoted {
  /** When the server answered as a primary. */
  readonly promotedAt: Date;
}

/**
 * Waits until the server has left recovery (promoted), polling it; fails when the postmaster
 * exits first (PostgreSQL shuts down when the target was not reached, or a WAL file was
 * corrupt) or the deadline passes, with what the log says.
 */
export async function waitForPromotion(
  server: RecoveringServer,
  connection: Connection,
  timeoutMs: number,
  options: ServerOptions,
): Promise<Promoted> {
  const until = Date.now() + timeoutMs;
  const since = Date.now();
  let seen = false;
  for (;;) {
    const client = await pgClient({ ...connection, host: '127.0.0.1', port: server.port });
    try {
      await client.connect();
      const r = await client.query<{ recovering: boolean }>('select pg_is_in_recovery() as recovering');
      if (r.rows[0]?.recovering === false) return { promotedAt: new Date() };
    } catch {
      // Not accepting connections yet (before consistency), or shutting down.
    } finally {
      await client.end().catch(() => {});
    }
    // pg_ctl start -W returns before the postmaster has written its pid file: a server not seen
    // yet is starting, for a while; one seen and gone has stopped.
    const up = await running(server.pgdata, options);
    seen ||= up;
    if (!up && (seen || Date.now() - since > STARTING_GRACE_MS)) {
      throw new RecoveryFailedError(
        `the recovering server stopped before it promoted: ${(await logReason(server.log)) || 'see its log'} (log: ${server.log})`,
      );
    }
    if (Date.now() >= until) {
      throw new RecoveryFailedError(
        `the server had not promoted after ${Math.round(timeoutMs / 1000)} s: ${(await logReason(server.log)) || 'still replaying'} (log: ${server.log})`,
      );
    }
    await delay(250);
  }
}

export interface ReplaySummary {
  /** WAL files the server restored from the archive. */
  readonly segmentsReplayed: number;
  /** PostgreSQL's own words on where it stopped, when it stopped at a target. */
  readonly stoppedAt?: string;
}

/** What the server log says of the replay. */
export async function replaySummary(log: string): Promise<ReplaySummary> {
  const text = await readFile(log, 'utf8').catch(() => '');
  const restored = new Set<string>();
  for (const m of text.matchAll(/restored log file "([0-9A-F]{24})" from archive/g))
    restored.add(m[1] as string);
  const stop = /LOG:\s+(recovery stopping [^\n]*)/.exec(text)?.[1]?.trim();
  return { segmentsReplayed: restored.size, ...(stop ? { stoppedAt: stop } : {}) };
}
