import * as z from 'zod';
import type { Config } from '../lib/config.js';
import { checkStaleness } from '../lib/monitor/staleness.js';
import type { Alerter } from '../lib/notify/alerter.js';
import type { Clock } from '../lib/platform/clock.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import { emfSink, type MetricsSink } from '../lib/platform/metrics.js';
import { runtimePorts } from '../lib/runtime.js';
import type { BackupStore } from '../lib/storage/store.js';

/** EventBridge Scheduler sends whatever input it was given (`{}` by default): any object will do. */
export const checkStalenessEvent = z.looseObject({});

export interface CheckStalenessPorts {
  readonly store: BackupStore;
  readonly config: Config;
  readonly alerter: Alerter;
  readonly clock: Clock;
  readonly metrics?: MetricsSink;
  readonly logger?: Logger;
}

/**
 * The hourly watchdog, on its own schedule: alerts on stale backups and a full NAS, publishes
 * BackupAgeHours per database. It depends on nothing of the backup state machine.
 */
export function createCheckStalenessHandler(ports: CheckStalenessPorts) {
  const metrics = ports.metrics ?? emfSink();
  return lambdaHandler(
    {
      name: 'check-staleness',
      event: checkStalenessEvent,
      ...(ports.logger ? { logger: ports.logger } : {}),
    },
    async (_event, { logger }) =>
      checkStaleness({
        store: ports.store,
        config: ports.config,
        now: ports.clock.now(),
        alerter: ports.alerter,
        metrics,
        logger,
      }),
  );
}

export const handler = lazyHandler(async () => createCheckStalenessHandler(await runtimePorts()));
