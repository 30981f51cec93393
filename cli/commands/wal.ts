import type { Command } from 'commander';
import { FETCH_ABORT } from '../../lib/domain/wal-names.js';
import type { CliDeps, ExitHolder } from '../context.js';

/** For `pgbp --help`: the commands themselves run before commander (see main.ts). */
export function registerWal(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('wal-push')
    .description(
      "archive_command: 'pgbp wal-push %p --config FILE'. Stores one WAL file compressed, with its SHA-256; exit 0 only once durably stored",
    )
    .argument('<path>', 'the WAL file (%p)')
    .option('--store <url>', 'store URL, overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--cluster <name>', "the archive's cluster name, overrides wal.cluster")
    .action(async (path: string, opts: Record<string, string>) => {
      exit.code = await (await import('./wal-run.js')).runWalPush([path, ...flags(opts)], deps);
    });
  program
    .command('wal-fetch')
    .description(
      `restore_command: 'pgbp wal-fetch %f %p --config FILE'. Exit 0 with the verified file at %p, 1 when not archived, ${FETCH_ABORT} when damaged or unreadable`,
    )
    .argument('<name>', 'the file name (%f)')
    .argument('<dest>', 'where to write it (%p)')
    .option('--store <url>', 'store URL, overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--cluster <name>', "the archive's cluster name, overrides wal.cluster")
    .action(async (name: string, dest: string, opts: Record<string, string>) => {
      exit.code = await (await import('./wal-run.js')).runWalFetch([name, dest, ...flags(opts)], deps);
    });
}

function flags(opts: Record<string, string | boolean>): string[] {
  return Object.entries(opts).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, String(v)]));
}
