import { z } from 'zod';
import type { Alerter } from '../lib/adapters/alerter.js';
import type { Clock } from '../lib/adapters/clock.js';
import { lambdaHandler, lazyHandler } from '../lib/adapters/lambda.js';
import type { Logger } from '../lib/adapters/logger.js';
import { runtimePorts } from '../lib/adapters/runtime.js';
import { ALERT_KINDS, alertSubject, failureAlert, sizeAlert } from '../lib/domain/alerts.js';

/** A check-size verdict, as CheckSize returned it. */
const sizeVerdict = z.object({
  status: z.enum(['ok', 'warning', 'error']),
  sizeBytes: z.number().int().nonnegative(),
  reasons: z.array(z.string()).min(1),
});

/**
 * Either a state machine's Catch output, with the error under `error` (`ResultPath: $.error`),
 * or a size warning with CheckSize's `verdict`. Other fields are ignored, never logged.
 */
export const notifyEvent = z
  .object({
    database: z.string().min(1).optional(),
    backupId: z.string().min(1).optional(),
    execution: z.string().min(1).optional(),
    kind: z.enum(ALERT_KINDS).optional(),
    error: z
      .object({
        Error: z.string().min(1),
        Cause: z.string().optional(),
      })
      .optional(),
    verdict: sizeVerdict.optional(),
  })
  .superRefine((e, ctx) => {
    if (!e.error && !e.verdict) {
      ctx.addIssue({
        code: 'custom',
        path: ['error'],
        message: 'expected the caught error { Error, Cause }, or a size verdict under verdict',
      });
    }
    if (!e.error && e.verdict) {
      if (!e.database)
        ctx.addIssue({ code: 'custom', path: ['database'], message: 'a size warning names its database' });
      if (!e.backupId)
        ctx.addIssue({ code: 'custom', path: ['backupId'], message: 'a size warning names its backup' });
    }
  });

export interface NotifyPorts {
  readonly alerter: Alerter;
  readonly clock: Clock;
  readonly logger?: Logger;
}

/** Notify: turns a caught failure (or a size warning) into an alert, secrets removed, and publishes it. */
export function createNotifyHandler(ports: NotifyPorts) {
  return lambdaHandler(
    {
      name: 'notify',
      event: notifyEvent,
      ...(ports.logger ? { logger: ports.logger } : {}),
      keys: (e) => ({
        ...(e.database ? { database: e.database } : {}),
        ...(e.backupId ? { backupId: e.backupId } : {}),
        ...(e.execution ? { executionArn: e.execution } : {}),
      }),
    },
    async (event, { logger }) => {
      const now = ports.clock.now();
      const alert = event.error
        ? failureAlert({ ...event, error: event.error }, now)
        : // The refinement above guarantees a verdict with its database and backup here.
          sizeAlert(
            event.database ?? '',
            event.backupId ?? '',
            event.verdict ?? { status: 'warning', reasons: [] },
            now,
            event.execution,
          );
      await ports.alerter.publish(alert);
      logger.info('alert published', {
        kind: alert.kind,
        severity: alert.severity,
        error: alert.error?.name,
      });
      return {
        kind: alert.kind,
        severity: alert.severity,
        subject: alertSubject(alert),
        ...(alert.database ? { database: alert.database } : {}),
        ...(alert.backupId ? { backupId: alert.backupId } : {}),
      };
    },
  );
}

export const handler = lazyHandler(() => createNotifyHandler(runtimePorts()));
