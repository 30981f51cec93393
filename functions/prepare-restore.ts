import * as z from 'zod';
import { InvalidRestoreRequestError } from '../lib/domain/errors.js';
import type { StoreRole } from '../lib/domain/store-roles.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import { connectionFor } from '../lib/postgres/connection.js';
import type { Connection } from '../lib/postgres/pg-tools.js';
import { nearestCopy } from '../lib/restore/copies.js';
import { parseRestoreRequest, type RestoreRequest, selectorOf } from '../lib/restore/request.js';
import { refuseExistingTarget } from '../lib/restore/target-guard.js';
import { runtimeConfig } from '../lib/runtime.js';
import type { BackupStore } from '../lib/storage/store.js';
import { openRoleStores, type RoleStore } from '../lib/storage/store-roles.js';

/** Any JSON: parseRestoreRequest validates it and names the bad field (InvalidRestoreRequestError). */
export const prepareRestoreEvent = z.unknown();

/** What the restore state machine carries on from Prepare. */
export interface PreparedRestore {
  /** The request the restore task runs: validated, with `backup` pinned to the resolved id. */
  readonly request: RestoreRequest;
  readonly backupId: string;
  /** The dump's key in the store. */
  readonly key: string;
  /** Whether the dump must be thawed before it can be read. */
  readonly archived: boolean;
  readonly storageClass: string;
  /** With two stores: the store whose copy this is (the one the restore reads, or thaws). */
  readonly copy?: { readonly role: StoreRole; readonly url: string };
}

export interface PrepareRestorePorts {
  readonly store: BackupStore;
  /**
   * The primary and secondary stores, nearest first: the backup is resolved across both, as the
   * restore task reads the nearest good copy. Without them, `store` alone.
   */
  readonly stores?: readonly RoleStore[];
  /** The connection to the server a restore of `database` goes to: Prepare asks it whether the target exists. */
  readonly connection: (database: string) => Promise<Connection>;
  readonly maintenanceDatabase?: string;
  readonly logger?: Logger;
}

/**
 * Prepare (the restore state machine's first state): validates a restore request, refuses a
 * target database that exists (unless replacing), and resolves `latest`, an id or a time to one
 * backup (with two stores, across both: the nearest copy that can be read now, else the nearest
 * archived one, which Thaw restores), so a bad request fails before any thaw or task starts and the backup cannot change
 * under a restore that waits for a thaw.
 */
export function createPrepareRestoreHandler(ports: PrepareRestorePorts) {
  return lambdaHandler(
    {
      name: 'prepare-restore',
      // A verdict, not a fault: the state machine catches it and alerts it.
      alertedErrors: ['InvalidRestoreRequestError', 'BackupNotFoundError'],
      event: prepareRestoreEvent,
      ...(ports.logger ? { logger: ports.logger } : {}),
    },
    async (event, { logger }): Promise<PreparedRestore> => {
      const request = parseRestoreRequest(event);
      await refuseExistingTarget(
        request,
        await ports.connection(request.database),
        ports.maintenanceDatabase ?? 'postgres',
      );
      // The manifest records the class at backup time; lifecycle rules may have archived it since.
      const stores = ports.stores?.length
        ? ports.stores
        : [{ role: 'primary' as const, store: ports.store, storageClass: 'STANDARD' }];
      const {
        backup,
        object: head,
        archived,
        at,
      } = await nearestCopy(stores, request.database, selectorOf(request));
      if (request.withGlobals && !backup.globalsManifestObject) {
        throw new InvalidRestoreRequestError(
          `withGlobals: backup ${backup.manifest.id} has no cluster globals (taken before pgbp captured them); restore it without withGlobals, creating its roles first`,
        );
      }
      const key = backup.manifest.key;
      const { before: _resolved, ...rest } = request;
      const pinned: RestoreRequest = { ...rest, backup: backup.manifest.id };
      logger.info('restore prepared', {
        database: request.database,
        backupId: backup.manifest.id,
        storageClass: head.storageClass,
        archived,
        store: at.role,
      });
      return {
        request: pinned,
        backupId: backup.manifest.id,
        key,
        archived,
        storageClass: head.storageClass,
        ...(stores.length > 1 ? { copy: { role: at.role, url: at.store.url } } : {}),
      };
    },
  );
}

export const handler = lazyHandler(async () => {
  const config = runtimeConfig();
  const stores = await openRoleStores(config);
  return createPrepareRestoreHandler({
    store: (stores[0] as RoleStore).store,
    stores,
    connection: (database) => connectionFor(config, process.env, database),
  });
});
