import { spawn } from 'node:child_process';
import { chmodSync, cpSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/** What a checkout holds besides its files: never part of an install's copy. */
const NOT_INSTALLED = new Set([
  'node_modules',
  '.git',
  '.build',
  '.tmp',
  '.scratch',
  '.serverless',
  '.esbuild',
  'coverage',
  'backups',
]);

/** The PATH systemd gives a service: a unit must not depend on the caller's. */
export const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function makeReadOnly(path: string): void {
  const s = lstatSync(path);
  if (s.isSymbolicLink()) return;
  if (s.isDirectory()) for (const name of readdirSync(path)) makeReadOnly(join(path, name));
  chmodSync(path, s.mode & 0o555);
}

/**
 * A copy of this install as root leaves it after `npm ci`, owned by root and made read-only for
 * everyone (`chmod -R a-w`), under a fresh directory that any user may enter. Without
 * node_modules: the CLI and the task processes run from dist/ alone. `edit` changes the copy
 * before it is made read-only, as an operator edits config/nas.yml; `withBuild: false` leaves
 * dist/ out, as a checkout that was never installed.
 */
export function readOnlyInstall(options: { withBuild?: boolean; edit?: (dir: string) => void } = {}): string {
  const parent = mkdtempSync(join(tmpdir(), 'pgbp-install-'));
  chmodSync(parent, 0o755);
  const dir = join(parent, 'pg-backup-pipeline');
  cpSync(ROOT, dir, {
    recursive: true,
    // As an install keeps them: the CLI front's code cache is made for its own file (cli/front.cjs).
    preserveTimestamps: true,
    filter: (source) => {
      const top = source.slice(ROOT.length + 1).split('/')[0] ?? '';
      return !NOT_INSTALLED.has(top) && (options.withBuild !== false || top !== 'dist');
    },
  });
  options.edit?.(dir);
  makeReadOnly(dir);
  return dir;
}

/** Removes a copy made by {@link readOnlyInstall}. */
export function removeInstall(dir: string): void {
  rmSync(resolve(dir, '..'), { recursive: true, force: true });
}

/** Every path under `dir` with its type, size, mode and modification time, to see that nothing changed. */
export function snapshot(dir: string): string[] {
  const lines: string[] = [];
  const walk = (path: string) => {
    const s = lstatSync(path);
    lines.push(`${path.slice(dir.length)} ${s.isDirectory() ? 'd' : 'f'} ${s.size} ${s.mode} ${s.mtimeMs}`);
    if (s.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name));
  };
  walk(dir);
  return lines;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `argv` as another OS user (runuser), in `cwd`, with exactly `env`. */
export function runAs(
  user: string,
  argv: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<RunResult> {
  return new Promise((done, fail) => {
    const child = spawn('runuser', ['-u', user, '--', ...argv], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', fail);
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}
