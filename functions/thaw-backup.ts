import { thawBackup } from '../lib/catalog/thaw.js';
import type { RestorePolicy } from '../lib/config.js';
import { backupReferenceSchema } from '../lib/domain/manifest.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import { nearestCopy } from '../lib/restore/copies.js';
import { runtimeConfig } from '../lib/runtime.js';
import type { BackupStore, ThawState } from '../lib/storage/store.js';
import { openRoleStores, type RoleStore } from '../lib/storage/store-roles.js';

export const thawBackupEvent = backupReferenceSchema;

/** Where a thaw stands, as the restore state machine's poll loop reads it (`state`). */
export interface ThawStatus {
  readonly backupId: string;
  readonly key: string;
  readonly storageClass: string;
  readonly state: ThawState['state'];
  /** When an available copy expires again (ISO 8601). */
  readonly until?: string;
}

export interface ThawBackupPorts {
  readonly store: BackupStore;
  /**
   * The primary and secondary stores, nearest first: the copy thawed is the one Prepare chose
   * (the nearest, when every copy is archived). Without them, `store` alone.
   */
  readonly stores?: readonly RoleStore[];
  readonly policy: Pick<RestorePolicy, 'thawTier' | 'thawDays'>;
  readonly logger?: Logger;
}

/**
 * Thaw (the restore state machine's poll): asks S3 to restore an archived dump, with the
 * configured tier and days, and reports where that stands. Asking again is harmless.
 */
export function createThawBackupHandler(ports: ThawBackupPorts) {
  return lambdaHandler(
    {
      name: 'thaw-backup',
      event: thawBackupEvent,
      ...(ports.logger ? { logger: ports.logger } : {}),
      keys: (e) => ({ database: e.database, backupId: e.backupId }),
    },
    async (event, { logger }): Promise<ThawStatus> => {
      const store =
        ports.stores && ports.stores.length > 1
          ? (await nearestCopy(ports.stores, event.database, { kind: 'id', id: event.backupId })).at.store
          : ports.store;
      const result = await thawBackup(
        store,
        event.database,
        { kind: 'id', id: event.backupId },
        { tier: ports.policy.thawTier, days: ports.policy.thawDays },
      );
      logger.info('thaw status', { storageClass: result.storageClass, state: result.thaw.state });
      const until = result.thaw.state === 'available' ? result.thaw.until : undefined;
      return {
        backupId: result.backupId,
        key: result.key,
        storageClass: result.storageClass,
        state: result.thaw.state,
        ...(until ? { until: until.toISOString() } : {}),
      };
    },
  );
}

export const handler = lazyHandler(async () => {
  const config = runtimeConfig();
  const stores = await openRoleStores(config);
  return createThawBackupHandler({
    store: (stores[0] as RoleStore).store,
    stores,
    policy: config.defaults.restore,
  });
});
