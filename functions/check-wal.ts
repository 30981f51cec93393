import * as z from 'zod';
import type { Config } from '../lib/config.js';
import { checkWalLag } from '../lib/monitor/wal-lag.js';
import type { Alerter } from '../lib/notify/alerter.js';
import type { Clock } from '../lib/platform/clock.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import { emfSink, type MetricsSink } from '../lib/platform/metrics.js';
import { connectionFor } from '../lib/postgres/connection.js';
import type { Connection } from '../lib/postgres/pg-tools.js';
import { runtimePorts } from '../lib/runtime.js';
import type { BackupStore } from '../lib/storage/store.js';

/** EventBridge Scheduler sends whatever input it was given (`{}` by default): any object will do. */
export const checkWalEvent = z.looseObject({});

export interface CheckWalPorts {
  readonly store: BackupStore;
  readonly config: Config;
  readonly alerter: Alerter;
  readonly clock: Clock;
  /** The primary the archive belongs to: its current segment and pg_stat_archiver. */
  readonly connection: () => Promise<Connection>;
  readonly metrics?: MetricsSink;
  readonly logger?: Logger;
}

/**
 * The WAL watch, every five minutes in the database's network: the archive's lag behind the
 * server as WalArchiveLagSeconds and WalArchiveSegmentsBehind, and `wal-archive-stale` /
 * `wal-archive-failing` alerts when the stage's RPO would break. A server it cannot reach fails
 * the invocation: the metric goes missing, which its alarm treats as breaching.
 */
export function createCheckWalHandler(ports: CheckWalPorts) {
  const metrics = ports.metrics ?? emfSink();
  return lambdaHandler(
    {
      name: 'check-wal',
      event: checkWalEvent,
      ...(ports.logger ? { logger: ports.logger } : {}),
      keys: () => ({ cluster: ports.config.wal.cluster }),
    },
    async (_event, { logger }) =>
      checkWalLag({
        store: ports.store,
        config: ports.config,
        connection: await ports.connection(),
        now: ports.clock.now(),
        alerter: ports.alerter,
        metrics,
        logger,
      }),
  );
}

export const handler = lazyHandler(async () => {
  const ports = await runtimePorts();
  return createCheckWalHandler({
    ...ports,
    connection: () => connectionFor(ports.config, process.env, process.env.PGDATABASE ?? 'postgres'),
  });
});
