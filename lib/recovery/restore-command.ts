import { join } from 'node:path';
import { projectRoot } from '../state-machines.js';

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The restore_command a recovered server runs: this install's pgbp wal-fetch with the same
 * config (and store), or `PGBP_RESTORE_COMMAND` where pgbp is installed elsewhere. The `pgbp`
 * command itself (the launcher cli/pgbp, which answers a spooled segment without starting Node)
 * with this process's node for the rest. PostgreSQL fills in %f and %p.
 */
export function restoreCommandFor(env: NodeJS.ProcessEnv, configFile: string, store?: string): string {
  if (env.PGBP_RESTORE_COMMAND) return env.PGBP_RESTORE_COMMAND;
  const pgbp = join(projectRoot(), 'cli', 'pgbp');
  const args = [pgbp, 'wal-fetch', '%f', '%p', '--config', configFile];
  if (store) args.push('--store', store);
  return [`PGBP_NODE=${shellQuote(process.execPath)}`, ...args.map(shellQuote)].join(' ');
}
