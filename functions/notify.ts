import * as z from 'zod';
import { alertSubject } from '../lib/domain/alert-texts.js';
import {
  ALERT_KINDS,
  type Alert,
  degradedAlert,
  failureAlert,
  restoreCompletedAlert,
  sizeAlert,
  storeSyncAlert,
} from '../lib/domain/alerts.js';
import type { Alerter } from '../lib/notify/alerter.js';
import type { Clock } from '../lib/platform/clock.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import { runtimePorts } from '../lib/runtime.js';

/** A check-size verdict, as CheckSize returned it. */
const sizeVerdict = z.object({
  status: z.enum(['ok', 'warning', 'error']),
  sizeBytes: z.number().int().nonnegative(),
  reasons: z.array(z.string()).min(1),
});

/** What the restore task reported (its summary on AWS, its whole report locally): the fields a notice shows. */
const restoreReport = z.object({
  backupId: z.string().min(1),
  target: z.string().min(1),
  recoverySeconds: z.number().nonnegative(),
  checks: z.array(z.object({ name: z.string(), passed: z.boolean() })).optional(),
  warnings: z.array(z.string()).optional(),
});

/**
 * Either a state machine's Catch output, with the error under `error` (`ResultPath: $.error`),
 * a size warning with CheckSize's `verdict`, or a completed restore (`kind: restore-completed`)
 * with the restore task's `report`. Other fields are ignored, never logged.
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
    report: restoreReport.optional(),
    /** A degraded backup: each store's outcome, as the dump task reported it. */
    copies: z
      .array(
        z.object({
          role: z.string().min(1),
          url: z.string().min(1),
          status: z.enum(['stored', 'failed']),
          error: z.object({ name: z.string(), message: z.string() }).optional(),
        }),
      )
      .optional(),
    /** What the dump task's sync between the stores left apart (kind store-sync-failed). */
    syncProblems: z
      .object({
        count: z.number().int().positive(),
        shown: z.array(
          z.object({
            role: z.string().min(1),
            url: z.string().min(1),
            status: z.enum(['failed', 'conflict']),
            subject: z.string().min(1),
            cause: z.string(),
          }),
        ),
      })
      .optional(),
  })
  .superRefine((e, ctx) => {
    if (e.kind === 'backup-degraded') {
      if (!e.copies)
        ctx.addIssue({ code: 'custom', path: ['copies'], message: 'a degraded backup carries its copies' });
      if (!e.database || !e.backupId)
        ctx.addIssue({
          code: 'custom',
          path: ['database'],
          message: 'a degraded backup names its database and backup',
        });
      return;
    }
    if (e.kind === 'store-sync-failed' && !e.error) {
      if (!e.syncProblems)
        ctx.addIssue({
          code: 'custom',
          path: ['syncProblems'],
          message: 'a failed sync carries its problems',
        });
      if (!e.database || !e.backupId)
        ctx.addIssue({
          code: 'custom',
          path: ['database'],
          message: 'a failed sync names the database and backup of its run',
        });
      return;
    }
    if (e.kind === 'restore-completed' && !e.error) {
      if (!e.report)
        ctx.addIssue({ code: 'custom', path: ['report'], message: 'a completed restore carries its report' });
      if (!e.database)
        ctx.addIssue({
          code: 'custom',
          path: ['database'],
          message: 'a completed restore names its database',
        });
      return;
    }
    if (!e.error && !e.verdict) {
      ctx.addIssue({
        code: 'custom',
        path: ['error'],
        message:
          'expected the caught error { Error, Cause }, or a size verdict under verdict, or kind restore-completed with a report',
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

/**
 * Notify: turns a caught failure, a size warning, a degraded backup, a failed sync between the
 * stores or a completed restore into an alert (secrets removed) and publishes it.
 */
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
      // The refinement above guarantees what each branch reads.
      let alert: Alert;
      if (event.kind === 'backup-degraded' && event.copies)
        alert = degradedAlert(event.database ?? '', event.backupId ?? '', event.copies, now, event.execution);
      else if (event.kind === 'store-sync-failed' && event.syncProblems && !event.error)
        alert = storeSyncAlert(
          event.database ?? '',
          event.backupId ?? '',
          event.syncProblems,
          now,
          event.execution,
        );
      else if (event.error) alert = failureAlert({ ...event, error: event.error }, now);
      else if (event.kind === 'restore-completed' && event.report)
        alert = restoreCompletedAlert(event.database ?? '', event.report, now, event.execution);
      else
        alert = sizeAlert(
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

export const handler = lazyHandler(async () => createNotifyHandler(await runtimePorts()));
