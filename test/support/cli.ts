import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const PGBP = resolve(import.meta.dirname, '../../cli/pgbp.mjs');
const ROOT = resolve(import.meta.dirname, '../..');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function collect(child: ChildProcess): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Runs the real `pgbp` command as a user would, in a child process. */
export function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return collect(
    spawn(process.execPath, [PGBP, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Runs a shell command line, as the README tells a user to. */
export function sh(command: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return collect(
    spawn('bash', ['-o', 'pipefail', '-c', command], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}
