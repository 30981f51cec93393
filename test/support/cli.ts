import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { outputOf, type ProcessOutput } from '../../lib/platform/processes.js';

export const PGBP = resolve(import.meta.dirname, '../../cli/pgbp.cjs');
/** The `pgbp` command as installed (package.json bin): the sh launcher, cli/pgbp. */
export const PGBP_LAUNCHER = resolve(import.meta.dirname, '../../cli/pgbp');
const ROOT = resolve(import.meta.dirname, '../..');

export type CliResult = ProcessOutput;

/** Runs the real `pgbp` command as a user would, in a child process. */
export function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return outputOf(
    spawn(process.execPath, [PGBP, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Runs a shell command line, as the README tells a user to. */
export function sh(command: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return outputOf(
    spawn('bash', ['-o', 'pipefail', '-c', command], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}
