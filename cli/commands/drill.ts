import type { Command } from 'commander';
import type { Json } from '../../lib/state-machines.js';
import type { CliDeps, ExitHolder } from '../context.js';
import type { ExecutionResult } from '../executions.js';
import { type MachineOptions, machineOptions } from '../machine-options.js';

/** The drill's report, as the pitr-drill machine's Report state gives it. */
function pitrSummary(result: ExecutionResult) {
  const o = (result.output ?? {}) as Record<string, Json>;
  const lines =
    result.status === 'SUCCEEDED'
      ? [
          `cluster ${o.cluster}: base backup ${o.baseId} recovered to ${o.target}; recovery point ${o.recoveryPoint ?? '-'}; ${o.segmentsReplayed} WAL segments replayed; RTO ${o.rtoSeconds} s`,
        ]
      : [];
  return { data: result.output ?? null, lines };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerDrill(program: Command, deps: CliDeps, exit: ExitHolder): void {
  machineOptions(
    program
      .command('drill')
      .description(
        'Run the recovery drill: restore the latest backup of each database into a scratch database, check it, record the RTO',
      )
      .option(
        '--database <name>',
        'drill this database (repeat for several; default: the configured ones)',
        collect,
        [],
      ),
  )
    .option(
      '--pitr',
      'the point-in-time recovery drill of the cluster instead: newest base backup, whole archive, checks',
    )
    .action(async (opts: MachineOptions & { database: string[]; pitr?: boolean }) => {
      const { drillSummary, finish, runMachine } = await import('../machine-command.js');
      if (opts.pitr) {
        const result = await runMachine(deps, 'pitr-drill', {}, opts);
        finish(deps, exit, result, opts, pitrSummary(result));
        return;
      }
      const input: Json = opts.database.length > 0 ? { databases: opts.database } : {};
      const result = await runMachine(deps, 'restore-drill', input, opts);
      finish(deps, exit, result, opts, drillSummary(result));
    });
}
