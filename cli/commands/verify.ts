import type { Command } from 'commander';
import type { CliDeps, ExitHolder } from '../context.js';
import type { RestoreCommandOptions } from './restore-run.js';

export function registerVerify(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('verify')
    .description('Prove a backup restores: restore it into a scratch database, run the checks, drop it')
    .argument('<backup>', 'a backup id, or "latest"')
    .requiredOption('--database <name>', 'the database whose backups to use (configured or not)')
    .option('--before <time>', 'with "latest": the newest backup taken before this ISO 8601 time')
    .option('--jobs <n>', 'parallel pg_restore jobs (spools to local disk when there is room)')
    .option('--depth <depth>', "rows: every table holds the backup's row count; content: also its exact data")
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option(
      '--from <store>',
      "read this store's copy only: primary or secondary (default: the nearest good copy, primary first)",
    )
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the verify report as one JSON object')
    .option('--verbose', 'structured log lines on stderr')
    .action(async (backup: string, opts: RestoreCommandOptions) => {
      const { runRestoreCommand } = await import('./restore-run.js');
      await runRestoreCommand(
        deps,
        exit,
        {
          mode: 'verify',
          database: opts.database,
          backup,
          ...(opts.before !== undefined ? { before: opts.before } : {}),
          ...(opts.jobs !== undefined ? { jobs: opts.jobs } : {}),
          ...(opts.depth !== undefined ? { depth: opts.depth } : {}),
        },
        opts,
      );
    });
}
