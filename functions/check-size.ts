import type { Config } from '../lib/config.js';
import { BackupNotFoundError, SizeOutOfRangeError } from '../lib/domain/errors.js';
import { backupReferenceSchema } from '../lib/domain/manifest.js';
import { checkBackupSize } from '../lib/monitor/size-check.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import { runtimePorts } from '../lib/runtime.js';
import type { BackupStore } from '../lib/storage/store.js';

export const checkSizeEvent = backupReferenceSchema;

export interface CheckSizePorts {
  readonly store: BackupStore;
  /** The secondary store: a degraded run's backup may be there alone. */
  readonly secondary?: BackupStore;
  readonly config: Config;
  readonly logger?: Logger;
}

/**
 * CheckSize: a new backup's size against its range and baseline. ok or warning → the verdict
 * (`status`, the reasons with their numbers); the state machine sends a warning to Notify. An
 * error → SizeOutOfRangeError, which its Catch sends to Notify.
 */
export function createCheckSizeHandler(ports: CheckSizePorts) {
  return lambdaHandler(
    {
      name: 'check-size',
      // A verdict, not a fault: the state machine catches it and alerts it.
      alertedErrors: ['SizeOutOfRangeError'],
      event: checkSizeEvent,
      ...(ports.logger ? { logger: ports.logger } : {}),
      keys: (e) => ({ database: e.database, backupId: e.backupId }),
    },
    async (event, { logger }) => {
      const { verdict } = await checkBackupSize({ store: ports.store, config: ports.config, ...event }).catch(
        (error: unknown) => {
          // The primary lacks a backup that one store failed to take: judge the secondary's copy.
          if (!(error instanceof BackupNotFoundError) || !ports.secondary) throw error;
          return checkBackupSize({ store: ports.secondary, config: ports.config, ...event });
        },
      );
      logger.info('size judged', {
        status: verdict.status,
        sizeBytes: verdict.sizeBytes,
        reasons: verdict.reasons,
      });
      if (verdict.status === 'error') {
        throw new SizeOutOfRangeError(
          `backup ${event.backupId} of ${event.database}: ${verdict.reasons.join('; ')}`,
        );
      }
      return { database: event.database, backupId: event.backupId, ...verdict };
    },
  );
}

export const handler = lazyHandler(async () => createCheckSizeHandler(await runtimePorts()));
