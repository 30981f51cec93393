import { storeVerifyReport } from '../catalog/verify-reports.js';
import { RestoreCheckFailedError } from '../domain/errors.js';
import type { OwnershipPlan } from '../domain/ownership.js';
import { type CheckResult, describeFailedChecks } from '../domain/restore-checks.js';
import {
  REPORT_VERSION,
  type RestoreGlobals,
  type RestoreOwnership,
  type RestoreReport,
} from '../domain/verify-report.js';
import type { ObjectDetails } from '../storage/store.js';
import type { CheckOutcome } from './checks.js';
import { type RestoreContext, seconds } from './context.js';
import type { RestorePlace } from './target.js';

/** What the steps of one restore measured, for its report. */
export interface RestoreFacts {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly fetchMs: number;
  readonly restoreMs: number;
  readonly checksMs: number;
  readonly recoveryMs: number;
  readonly bytesFetched: number;
  readonly jobs: number;
  readonly spooled: boolean;
  readonly replaced: boolean;
  readonly object: Pick<ObjectDetails, 'storageClass'>;
  readonly outcome: CheckOutcome;
  readonly globals?: RestoreGlobals;
}

export function restoreReport(ctx: RestoreContext, place: RestorePlace, facts: RestoreFacts): RestoreReport {
  const { manifest, request } = ctx;
  const { checks, tables } = facts.outcome;
  return {
    reportVersion: REPORT_VERSION,
    backupId: manifest.id,
    database: request.database,
    mode: request.mode,
    target: place.target,
    passed: passedAll(checks),
    startedAt: facts.startedAt.toISOString(),
    finishedAt: facts.finishedAt.toISOString(),
    timings: {
      fetchSeconds: seconds(facts.fetchMs),
      restoreSeconds: seconds(facts.restoreMs),
      checksSeconds: seconds(facts.checksMs),
    },
    recoverySeconds: seconds(facts.recoveryMs),
    bytesFetched: facts.bytesFetched,
    jobs: facts.jobs,
    spooled: facts.spooled,
    schemas: request.schemas,
    replaced: facts.replaced,
    depth: ctx.depth,
    backup: {
      createdAt: manifest.createdAt,
      sizeBytes: manifest.sizeBytes,
      sha256: manifest.sha256,
      codec: manifest.compression.codec,
      storageClass: facts.object.storageClass,
    },
    tables,
    checks,
    warnings: [...new Set(ctx.warnings)],
    ...(facts.globals ? { globals: facts.globals } : {}),
    ...(ctx.ownership ? { ownership: withoutFlags(ctx.ownership) } : {}),
  };
}

function withoutFlags({
  noOwner: _o,
  noPrivileges: _p,
  noTablespaces: _t,
  ...rest
}: OwnershipPlan): RestoreOwnership {
  return rest;
}

export function passedAll(checks: readonly CheckResult[]): boolean {
  return checks.every((c) => c.passed);
}

/**
 * The report step: a verify stores its report beside the backup; a restore whose checks failed
 * is RestoreCheckFailedError carrying the report, saying what was kept.
 */
export async function settleReport(
  ctx: RestoreContext,
  place: RestorePlace,
  report: RestoreReport,
): Promise<void> {
  const { request, deps, manifest, log } = ctx;
  const { target, restoreInto } = place;
  if (request.mode === 'verify') await storeVerifyReport(deps.store, report);
  log.info('checks done', { passed: report.passed, recoverySeconds: report.recoverySeconds });
  if (report.passed) return;
  const kept =
    request.mode === 'restore' && restoreInto === target
      ? `; ${target} is kept for inspection (drop it when done)`
      : request.mode === 'restore'
        ? `; ${target} was left as it was`
        : '';
  throw new RestoreCheckFailedError(
    `backup ${manifest.id} restored into ${target} but failed its checks: ${describeFailedChecks(report.checks)}${kept}`,
    { report },
  );
}
