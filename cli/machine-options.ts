// The options every state machine command declares. Apart from cli/machine-command.ts, which runs
// the machine, so that registering `backup` or `drill` (and printing their help) loads no runner.
import type { Command } from 'commander';

/** The options every state machine command takes. */
export interface MachineOptions {
  readonly config?: string;
  readonly store?: string;
  readonly json?: boolean;
  readonly aws?: boolean;
  readonly stateMachineArn?: string;
  readonly verbose?: boolean;
}

/** Adds the options of {@link MachineOptions} to a command. */
export function machineOptions(command: Command): Command {
  return command
    .option('--config <file>', 'stage config file (default: config/local.yml)')
    .option(
      '--store <url>',
      'local runs: store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config',
    )
    .option(
      '--aws',
      'start the deployed state machine and follow it (the default when the config says mode: aws)',
    )
    .option(
      '--state-machine-arn <arn>',
      'AWS mode: this machine instead of pg-backup-pipeline-<stage>-<machine>',
    )
    .option('--json', 'print how the execution ended as one JSON object, and no steps')
    .option('--verbose', 'local runs: the Lambdas’ and tasks’ structured log lines on stderr');
}
