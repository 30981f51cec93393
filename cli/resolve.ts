// How a command finds its config and its store. Loaded by a command when it runs, not when it is
// registered: the config schema, YAML and the store modules are what a command's start-up costs.
import { stat } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { type Config, configFileExists, findConfigFile, loadConfig, parseConfig } from '../lib/config.js';
import { ConfigError } from '../lib/domain/errors.js';
import type { PassedOver, StoreRole } from '../lib/domain/store-roles.js';
import { fileStoreDirectory } from '../lib/storage/file-url.js';
import { openStore, type StoreSettings } from '../lib/storage/open-store.js';
import type { BackupStore } from '../lib/storage/store.js';
import { configuredRoles, openStoresFor, type RoleStore, roleSettings } from '../lib/storage/store-roles.js';
import type { CliDeps } from './context.js';

/** The built-in local defaults, when no config file is given or found. */
export const BUILT_IN_CONFIG = { stage: 'local', store: 'file:./backups' } as const;

/**
 * The file {@link resolveConfig} loads, by the rule every entrypoint follows
 * ({@link findConfigFile}: `--config FILE`, else PGBP_CONFIG, else ./config/<stage>.yml);
 * undefined for the built-in defaults, when no file is named and the default one is not there.
 */
export function configFileOf(deps: CliDeps, file?: string): string | undefined {
  const found = findConfigFile(deps.env, deps.cwd, file);
  return configFileExists(found) ? found.path : undefined;
}

/** Loads the config file {@link configFileOf} finds, else the built-in local defaults. */
export function resolveConfig(deps: CliDeps, file?: string): Config {
  const found = configFileOf(deps, file);
  if (found) return loadConfig(found);
  return parseConfig(BUILT_IN_CONFIG, '(built-in defaults)');
}

/**
 * Opens `--store URL` or the config's store; a relative `file:dir` is taken from the working
 * directory. Only a command that writes backups (`use: 'write'`) may find a directory store
 * missing (it creates it); any other fails naming the directory, so a typo creates nothing.
 */
export async function resolveStore(
  deps: CliDeps,
  config: { readonly store: string } & StoreSettings,
  url?: string,
  use: 'read' | 'write' = 'read',
): Promise<BackupStore> {
  const chosen = url ?? config.store;
  if (!chosen.startsWith('file:')) return openStore(chosen, config);
  const dir = fileStoreDirectory(chosen, deps.cwd);
  if (use === 'read') {
    const found = await stat(dir).catch(() => undefined);
    if (!found?.isDirectory()) {
      throw new ConfigError(
        `store file://${dir}: the directory ${dir} does not exist${found ? ' (it is a file)' : ''}; check the path (nothing has been backed up there yet)`,
      );
    }
  }
  return openStore(pathToFileURL(dir).href, config);
}

/**
 * The stores a command uses: `--store URL` alone (an ad hoc store, as the primary), else the
 * config's primary and secondary, each opened with its own settings and checked as
 * {@link resolveStore} checks one.
 */
export async function resolveStores(
  deps: CliDeps,
  config: Config,
  url?: string,
  use: 'read' | 'write' = 'read',
): Promise<RoleStore[]> {
  if (url) {
    return [
      {
        role: 'primary',
        store: await resolveStore(deps, config, url, use),
        storageClass: config.storageClass,
      },
    ];
  }
  const open = (u: string, settings: StoreSettings) => resolveStore(deps, { ...settings, store: u }, u, use);
  return openStoresFor(config, url, open);
}

/**
 * The stores a restore may read, nearest first: `--store URL` alone, else the configured ones,
 * each checked as {@link resolveStore} checks one. A store that cannot be opened (the NAS's
 * directory is gone) is left out and reported, so the restore reads the other; with `from`, only
 * that store, and its failure is the error.
 */
export async function resolveReadableStores(
  deps: CliDeps,
  config: Config,
  url?: string,
  from?: StoreRole,
): Promise<{ stores: RoleStore[]; unavailable: PassedOver[] }> {
  if (url) {
    const store = await resolveStore(deps, config, url, 'read');
    return { stores: [{ role: 'primary', store, storageClass: config.storageClass }], unavailable: [] };
  }
  const stores: RoleStore[] = [];
  const unavailable: PassedOver[] = [];
  let firstError: unknown;
  for (const role of configuredRoles(config)) {
    if (from && role !== from) continue;
    const settings = roleSettings(config, role) as NonNullable<ReturnType<typeof roleSettings>>;
    try {
      const store = await resolveStore(deps, { store: settings.url, ...settings }, settings.url, 'read');
      stores.push({ role, store, storageClass: settings.storageClass });
    } catch (error) {
      firstError ??= error;
      unavailable.push({ role, url: settings.url, reason: `unavailable: ${(error as Error).message}` });
    }
  }
  if (stores.length === 0) throw firstError;
  return { stores, unavailable };
}
