import type { Command } from 'commander';
import type { Json } from '../../lib/state-machines.js';
import type { CliDeps, ExitHolder } from '../context.js';
import { type MachineOptions, machineOptions } from '../machine-options.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerBackup(program: Command, deps: CliDeps, exit: ExitHolder): void {
  machineOptions(
    program
      .command('backup')
      .description(
        'Run the backup state machine: dump each database, check its size, apply retention, alert on failure',
      )
      .option(
        '--database <name>',
        'back up this database (repeat for several; default: the configured ones)',
        collect,
        [],
      ),
  ).action(async (opts: MachineOptions & { database: string[] }) => {
    const { backupSummary, finish, runMachine } = await import('../machine-command.js');
    const input: Json = opts.database.length > 0 ? { databases: opts.database } : {};
    const result = await runMachine(deps, 'backup', input, opts);
    finish(deps, exit, result, opts, backupSummary(result));
  });
}
