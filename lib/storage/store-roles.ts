import type { Config } from '../config.js';
import type { StoreRole } from '../domain/store-roles.js';
import { openStore, type StoreSettings } from './open-store.js';
import type { BackupStore } from './store.js';

/** A store and the part it plays. */
export interface RoleStore {
  readonly role: StoreRole;
  readonly store: BackupStore;
  /** The S3 storage class new objects in this store get. */
  readonly storageClass: string;
}

/** The settings of one role's store: its own over the stage's. */
export function roleSettings(
  config: StagePart,
  role: StoreRole,
): ({ url: string; storageClass: string } & StoreSettings) | undefined {
  const own = role === 'primary' ? config.stores.primary : config.stores.secondary;
  if (!own) return undefined;
  const kmsKeyId = own.kmsKeyId ?? config.kmsKeyId;
  const encryption = own.encryption ?? config.encryption;
  return {
    url: own.url,
    storageClass: own.storageClass ?? config.storageClass,
    ...(kmsKeyId !== undefined ? { kmsKeyId } : {}),
    // Not the stage's: the stage's region is the process's own, which the default clients use.
    ...(own.region !== undefined ? { bucketRegion: own.region } : {}),
    ...(encryption !== undefined && config.stage !== undefined ? { encryption, stage: config.stage } : {}),
  };
}

/** What of the stage's config opens its stores. */
type StagePart = Pick<Config, 'stores' | 'kmsKeyId' | 'storageClass'> &
  Partial<Pick<Config, 'stage' | 'encryption'>>;

/** The roles a stage has: the primary, and the secondary where one is configured. */
export function configuredRoles(config: Pick<Config, 'stores'>): StoreRole[] {
  return config.stores.secondary ? ['primary', 'secondary'] : ['primary'];
}

/**
 * Opens each configured store with its own settings. `open` turns a URL into a store (the
 * CLI's checks that a directory exists, say). This is where a store's own wrappers go: the
 * encryption of a store whose settings differ is applied here, per store.
 */
export async function openRoleStores(
  config: StagePart,
  open: (url: string, settings: StoreSettings) => Promise<BackupStore> = openStore,
): Promise<RoleStore[]> {
  return Promise.all(
    configuredRoles(config).map(async (role) => {
      const settings = roleSettings(config, role) as NonNullable<ReturnType<typeof roleSettings>>;
      return { role, store: await open(settings.url, settings), storageClass: settings.storageClass };
    }),
  );
}

/**
 * The stores a command writes to or reads from: the configured ones, or, when `override` names
 * another store than the primary (`--store`, PGBP_STORE), that store alone, as the primary.
 */
export async function openStoresFor(
  config: StagePart,
  override: string | undefined,
  open: (url: string, settings: StoreSettings) => Promise<BackupStore> = openStore,
): Promise<RoleStore[]> {
  if (override === undefined) return openRoleStores(config, open);
  const primary = roleSettings(config, 'primary') as NonNullable<ReturnType<typeof roleSettings>>;
  const chosen = await open(override, primary);
  // Compared as opened (a relative directory made absolute), with no check of either.
  if (chosen.url === (await openStore(primary.url, primary)).url) return openRoleStores(config, open);
  return [{ role: 'primary', store: chosen, storageClass: primary.storageClass }];
}
