import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type * as z from 'zod';
import {
  type assertion,
  configSchema,
  type database,
  type restore,
  type retention,
  type sizeCheck,
} from './config-schema.js';
import { ConfigError } from './domain/errors.js';
import { describeIssues } from './domain/schema-issues.js';
import type { StoreRole } from './domain/store-roles.js';

export type Config = z.output<typeof configSchema>;
export type DatabaseConfig = z.output<typeof database>;
export type RetentionPolicy = z.output<typeof retention>;
export type SizePolicy = z.output<typeof sizeCheck>;
export type RestorePolicy = z.output<typeof restore>;
export type Assertion = z.output<typeof assertion>;
export type WalSettings = Config['wal'];
export type EncryptionSettings = NonNullable<Config['encryption']>;

/** The settings for one database: its own entry over the defaults; unconfigured ones get the defaults. */
export interface DatabaseSettings {
  readonly name: string;
  readonly configured: boolean;
  readonly retention: RetentionPolicy;
  readonly size: SizePolicy;
  readonly restore: RestorePolicy;
  readonly assertions: readonly Assertion[];
}

export function databaseSettings(config: Config, name: string): DatabaseSettings {
  const entry = config.databases.find((d) => d.name === name);
  return Object.freeze({
    name,
    configured: entry !== undefined,
    retention: { ...config.defaults.retention, ...stripUndefined(entry?.retention ?? {}) },
    size: { ...config.defaults.size, ...stripUndefined(entry?.size ?? {}) },
    restore: { ...config.defaults.restore, ...stripUndefined(entry?.restore ?? {}) },
    assertions: entry?.assertions ?? [],
  });
}

/**
 * The retention of one database in one store: the database's settings with the store's own laid
 * over them (the NAS keeps its 7 daily backups whatever a database asks of S3).
 */
export function storeRetention(config: Config, role: StoreRole, database: string): RetentionPolicy {
  const own = role === 'primary' ? config.stores.primary.retention : config.stores.secondary?.retention;
  return Object.freeze({ ...databaseSettings(config, database).retention, ...stripUndefined(own ?? {}) });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Validates a parsed config object; `source` names where it came from in errors. Without zod's
 * compiled fast path (`jitless`): it compiles one for each object schema at its first parse, which
 * pays back over many parses of one schema, and a process parses its config once; the checks and
 * their messages are the same. Its first parse here: 11-14 ms, 4-5 ms without.
 */
export function parseConfig(raw: unknown, source: string): Config {
  const result = configSchema.safeParse(raw ?? {}, { jitless: true });
  if (!result.success) {
    const lines = describeIssues(result.error, '(top level)').map((line) => `${source}: ${line}`);
    throw new ConfigError(lines.join('\n'));
  }
  return deepFreeze(result.data);
}

/** Loads and validates a YAML config file once; fails loudly with the file, the key path and the expectation. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`${file}: cannot read the config file (${(cause as Error).message})`, { cause });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new ConfigError(`${file}: not valid YAML: ${(cause as Error).message.split('\n')[0]}`, { cause });
  }
  return parseConfig(raw, file);
}

/** Where a config file was found, and whether it was named (a file named must exist). */
export interface FoundConfigFile {
  readonly path: string;
  /** Named by `--config` or PGBP_CONFIG, rather than the default of the stage. */
  readonly named: boolean;
}

/**
 * The one rule that finds the config file, for the CLI, the Lambdas and the tasks: the file
 * given (`--config`), else PGBP_CONFIG, else `config/<PGBP_STAGE, or local>.yml` beside the code
 * on Lambda (LAMBDA_TASK_ROOT) or in the working directory. Relative paths are from `cwd`.
 */
export function findConfigFile(
  env: NodeJS.ProcessEnv,
  cwd: string = process.cwd(),
  file?: string,
): FoundConfigFile {
  const named = file ?? env.PGBP_CONFIG;
  if (named) return { path: resolve(cwd, named), named: true };
  return {
    path: resolve(env.LAMBDA_TASK_ROOT ?? cwd, 'config', `${env.PGBP_STAGE ?? 'local'}.yml`),
    named: false,
  };
}

/**
 * The config of a deployed process (a Lambda, a task): {@link findConfigFile}'s file, which must
 * be there.
 */
export function loadDeployedConfig(env: NodeJS.ProcessEnv, cwd?: string): Config {
  return loadConfig(findConfigFile(env, cwd).path);
}

/** Whether a config file is there to load: a named one always is (its absence is an error to report). */
export function configFileExists(found: FoundConfigFile): boolean {
  return found.named || existsSync(found.path);
}
