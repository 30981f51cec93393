import type { Command } from 'commander';
import type { Json } from '../../lib/state-machines.js';
import type { CliDeps, ExitHolder } from '../context.js';
import { drillSummary, finish, type MachineOptions, machineOptions, runMachine } from '../machine-command.js';

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
  ).action(async (opts: MachineOptions & { database: string[] }) => {
    const input: Json = opts.database.length > 0 ? { databases: opts.database } : {};
    const result = await runMachine(deps, 'restore-drill', input, opts);
    finish(deps, exit, result, opts, drillSummary(result));
  });
}
