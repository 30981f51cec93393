import type { Command } from 'commander';
import type { CliDeps, ExitHolder } from '../context.js';
import type { MachineOptions } from '../machine-options.js';
import type { RestoreCommandOptions } from './restore-run.js';

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
    .option(
      '--with-globals',
      "first create the backup's roles and tablespaces that the target server lacks (existing ones are left alone)",
    )
    .option('--no-owner', 'leave owners out: the objects belong to the restoring user')
    .option('--no-privileges', 'leave privileges (GRANT/REVOKE) out')
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option(
      '--from <store>',
      "read this store's copy only: primary or secondary (default: the nearest good copy, primary first)",
    )
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
            withGlobals?: boolean;
            owner?: boolean;
            privileges?: boolean;
          },
      ) => {
        const { resolveConfig } = await import('../resolve.js');
        // Owners and privileges are kept by default (where the target has the roles); only an
        // explicit --no-owner / --no-privileges goes into the request.
        const access = {
          ...(opts.withGlobals ? { withGlobals: true } : {}),
          ...(opts.owner === false ? { noOwner: true } : {}),
          ...(opts.privileges === false ? { noPrivileges: true } : {}),
        };
        if (opts.viaStateMachine || opts.aws || resolveConfig(deps, opts.config).mode === 'aws') {
          const { finish, restoreSummary, runMachine } = await import('../machine-command.js');
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
            ...access,
          };
          const result = await runMachine(deps, 'restore', input, opts);
          finish(deps, exit, result, opts, restoreSummary(result));
          return;
        }
        const { runRestoreCommand } = await import('./restore-run.js');
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
            ...access,
          },
          opts,
        );
      },
    );
}
