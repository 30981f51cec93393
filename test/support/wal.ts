import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGBP_LAUNCHER } from './cli.js';
import type { ScratchCluster } from './scratch-cluster.js';

/** A shell word, quoted for archive_command / restore_command lines. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line PostgreSQL runs: the real pgbp as a user configures it, the installed command
 * (the launcher cli/pgbp, which runs this node for what it does not answer itself).
 */
export function pgbpCommand(args: readonly string[]): string {
  return [`PGBP_NODE=${shellQuote(process.execPath)}`, shellQuote(PGBP_LAUNCHER)]
    .concat(args.map((a) => (a.startsWith('%') ? a : shellQuote(a))))
    .join(' ');
}

/** Waits until `check` returns a value (not undefined/false), polling; throws with `what` after `ms`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, ms = 180_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Switches to a new segment and waits until the archiver reports the one it closed as archived. */
export async function switchAndWaitArchived(cluster: ScratchCluster): Promise<string> {
  cluster.sql('select pg_current_wal_lsn()'); // a round trip first: the server is up
  const closed = cluster.sql('select pg_walfile_name(pg_switch_wal())');
  await waitFor(`${closed} archived`, () => {
    const last = cluster.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
    return last !== '' && last.slice(0, 24) >= closed;
  });
  return closed;
}

/** The archiver's counters. */
export function archiverStats(cluster: ScratchCluster): {
  archived: number;
  failed: number;
  lastFailed: string;
} {
  const [archived, failed, lastFailed] = cluster
    .sql("select archived_count, failed_count, coalesce(last_failed_wal, '') from pg_stat_archiver")
    .split('|');
  return { archived: Number(archived), failed: Number(failed), lastFailed: lastFailed ?? '' };
}

/** The names in pg_wal/archive_status with a suffix (`.ready`, `.done`). */
export function archiveStatus(cluster: ScratchCluster, suffix: '.ready' | '.done'): string[] {
  return readdirSync(join(cluster.data, 'pg_wal', 'archive_status'))
    .filter((n) => n.endsWith(suffix))
    .map((n) => n.slice(0, -suffix.length))
    .sort();
}
