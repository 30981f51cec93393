import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { openStore } from '../lib/adapters/open-store.js';
import type { BackupStore } from '../lib/adapters/store.js';
import { type Config, loadConfig, parseConfig } from '../lib/config.js';

/** What a command may touch: passed in, so tests run commands in-process with no module mocks. */
export interface CliDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface CommonOptions {
  readonly config?: string;
  readonly store?: string;
  readonly json?: boolean;
}

/** Loads `--config FILE`, else ./config/local.yml when present, else the built-in local defaults. */
export function resolveConfig(deps: CliDeps, file?: string): Config {
  if (file) return loadConfig(resolve(deps.cwd, file));
  const local = resolve(deps.cwd, 'config/local.yml');
  if (existsSync(local)) return loadConfig(local);
  return parseConfig({ stage: 'local', store: 'file://./backups' }, '(built-in defaults)');
}

/** Opens `--store URL` or the config's store; a relative file:// path is taken from the working directory. */
export function resolveStore(deps: CliDeps, config: Config, url?: string): BackupStore {
  const chosen = url ?? config.store;
  const absolute =
    chosen.startsWith('file://') && !chosen.startsWith('file:///')
      ? `file://${resolve(deps.cwd, chosen.slice('file://'.length))}`
      : chosen;
  return openStore(absolute, config);
}

/** Writes one line to stdout. */
export function out(deps: CliDeps, text: string): void {
  deps.stdout.write(`${text}\n`);
}

/** Writes one line to stderr. */
export function err(deps: CliDeps, text: string): void {
  deps.stderr.write(`${text}\n`);
}
