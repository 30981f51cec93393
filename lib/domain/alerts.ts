/**
 * Alerts as people read them: in an e-mail from SNS, in Slack, on a console. Built here from
 * what went wrong; published by the adapters. Secrets never survive into an alert: causes are
 * scrubbed of secret-looking fields and passed through {@link redact}.
 */
import { describeCause, truncate } from './alert-causes.js';
import { redact } from './redact.js';
import type { SizeVerdict } from './size-check.js';
import type { FreeSpaceVerdict, StalenessVerdict } from './staleness.js';

export const ALERT_KINDS = [
  'backup-failed',
  'backup-degraded',
  'store-sync-failed',
  'backup-stale',
  'size-anomaly',
  'restore-check-failed',
  'restore-failed',
  'restore-completed',
  'retention-blocked',
  'low-free-space',
  'wal-archive-conflict',
  'wal-archive-degraded',
  'wal-archive-stale',
  'wal-archive-failing',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export const SEVERITIES = ['critical', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface Alert {
  readonly kind: AlertKind;
  readonly severity: Severity;
  readonly database?: string;
  readonly backupId?: string;
  /** The Step Functions execution (ARN or name) that failed. */
  readonly execution?: string;
  readonly error?: { readonly name: string; readonly cause: string };
  /** What happened, in a sentence or a few lines. */
  readonly summary: string;
  /** What to do about it, in order. */
  readonly nextSteps: readonly string[];
  /** When it was noticed (ISO 8601). */
  readonly at: string;
}

/** The title of each kind of alert, as people read it. */
export const TITLES: Record<AlertKind, string> = {
  'backup-failed': 'Backup failed',
  'backup-degraded': 'Backup degraded (one store lacks it)',
  'store-sync-failed': 'Stores not synced (one store lacks what the other holds)',
  'backup-stale': 'Backup stale',
  'size-anomaly': 'Backup size anomaly',
  'restore-check-failed': 'Restore check failed',
  'restore-failed': 'Restore failed',
  'restore-completed': 'Restore completed',
  'retention-blocked': 'Retention blocked',
  'low-free-space': 'Backup store low on space',
  'wal-archive-conflict': 'WAL archive conflict',
  'wal-archive-degraded': 'WAL archive degraded (one store lacks new WAL)',
  'wal-archive-stale': 'WAL archive stale',
  'wal-archive-failing': 'WAL archiving failing',
};

/** Which kind of alert a typed error stands for, when the caller did not say. */
export function kindForError(errorName: string): AlertKind {
  switch (errorName) {
    case 'SizeOutOfRangeError':
      return 'size-anomaly';
    case 'RestoreCheckFailedError':
    case 'RestoreFailedError':
    case 'CorruptBackupError':
      return 'restore-check-failed';
    case 'InvalidRestoreRequestError':
    case 'ArchivedBackupError':
      return 'restore-failed';
    case 'RetentionBlockedError':
      return 'retention-blocked';
    case 'WalConflictError':
    case 'ForeignClusterError':
      return 'wal-archive-conflict';
    case 'WalArchiveUnavailableError':
    case 'CorruptWalError':
    case 'InvalidWalFileError':
      return 'wal-archive-failing';
    default:
      return 'backup-failed';
  }
}

function nextStepsFor(
  kind: AlertKind,
  database: string | undefined,
  execution: string | undefined,
): string[] {
  const db = database ?? '<database>';
  switch (kind) {
    case 'backup-failed':
      return [
        execution
          ? `Read the failed step in the execution's history: ${execution}`
          : 'Read the failed step in the Step Functions console',
        `Run the backup by hand to see the error: pgbp dump --database ${db}`,
        'Check that the database is reachable and the backup password secret is current',
        `Check the newest good backup with: pgbp status (retention pauses by itself if ${db} goes stale)`,
      ];
    case 'backup-degraded':
      return [
        'The backup exists in the other store: nothing is lost, but it is kept once, not twice',
        'Fix the store named above (mounted? full? reachable? credentials?)',
        `Then copy what it lacks, verified: pgbp sync --database ${db} (the next scheduled run does it too)`,
        'See each store side by side: pgbp status',
      ];
    case 'store-sync-failed':
      return [
        'The backup of this run is stored in both stores; what is named above is kept in one store only, or differs between them',
        'Fix the store named above (mounted? full? reachable? credentials?), then copy what it lacks, verified: pgbp sync (the next scheduled run tries again)',
        'A CONFLICT (a name both stores hold with other contents) is never resolved by pgbp: find which copy is right and remove the other by hand (docs/RUNBOOK.md, "NAS lost")',
        'See each store side by side: pgbp status',
      ];
    case 'backup-stale':
      return [
        'Check that the backup schedule is enabled and read its last executions',
        `Take a backup by hand now: pgbp dump --database ${db}`,
        'Run pgbp status to see every database’s newest backup and age',
        'Retention deletes nothing for this database until a fresh backup exists',
      ];
    case 'size-anomaly':
      return [
        `Compare with earlier backups: pgbp list --database ${db}`,
        'Ask whether a large delete, truncate or migration happened, or whether the wrong database was dumped',
        'Run a restore check of this backup before relying on it',
      ];
    case 'restore-check-failed':
      return [
        'Read the verify report next to the backup (<backupId>.verify.json) for the failed check',
        `Take a fresh backup and check it restores: pgbp dump --database ${db}`,
        'Until then, treat this backup as unusable for recovery',
      ];
    case 'restore-failed':
      return [
        execution
          ? `Read the failed step in the execution's history: ${execution}`
          : 'Read the failed step in the Step Functions console',
        'A request refused before the restore started created nothing: correct it and start the restore again',
        'A restore that failed part-way dropped the database it created; one whose checks failed is kept for inspection',
        `See which backups can be restored: pgbp list --database ${db}`,
      ];
    case 'restore-completed':
      return [
        'Check the restored database before pointing anything at it',
        'Drop it once it is no longer needed: it is not backed up unless configured',
      ];
    case 'retention-blocked':
      return [
        'Nothing was deleted; storage grows until retention can run again',
        'Fix the cause below (a stale backup resolves itself once a fresh good backup exists)',
        `Preview what retention would do: pgbp retention --database ${db} --dry-run`,
      ];
    case 'low-free-space':
      return [
        'Free space on the backup volume or grow it before the next dump fails',
        'Preview what retention would remove: pgbp retention --dry-run',
      ];
    case 'wal-archive-conflict':
      return [
        'Nothing was overwritten: the archive keeps the copy it had, and PostgreSQL keeps retrying this file',
        'Check that archive_command of only one cluster points at this archive (wal.cluster in the config)',
        'Run pgbp check on the database host to see the archive and the server side by side',
      ];
    case 'wal-archive-degraded':
      return [
        'archive_command goes on succeeding: the WAL is durably stored in the other store, kept once, not twice',
        'Fix the store named above (mounted? full? reachable? credentials?); this alert repeats at most hourly while it fails',
        'Then copy the WAL it lacks from the other store, verified: pgbp sync',
        "Run pgbp check on the database host: it shows each store's newest segment against the server's",
      ];
    case 'wal-archive-stale':
    case 'wal-archive-failing':
      return [
        'Run pgbp check on the database host: it names each setting or failure in the way',
        "Read the server's log for archive_command failures (pg_stat_archiver.last_failed_wal)",
        'Until the archive catches up, recovery can only reach its newest segment: the RPO is not met',
      ];
  }
}

function severityFor(kind: AlertKind): Severity {
  if (kind === 'restore-completed') return 'info';
  return kind === 'retention-blocked' ||
    kind === 'low-free-space' ||
    kind === 'backup-degraded' ||
    kind === 'store-sync-failed' ||
    kind === 'wal-archive-degraded'
    ? 'warning'
    : 'critical';
}

/** The payload a state machine's Catch hands to Notify. */
export interface FailurePayload {
  readonly database?: string;
  readonly backupId?: string;
  readonly execution?: string;
  readonly kind?: AlertKind;
  readonly error: { readonly Error: string; readonly Cause?: string };
}

/** An alert for a failed step: the error's name, its cause made readable, what to do next. */
export function failureAlert(payload: FailurePayload, now: Date, secrets: readonly string[] = []): Alert {
  const kind = payload.kind ?? kindForError(payload.error.Error);
  const cause = describeCause(payload.error.Cause, secrets);
  const where = payload.database ? ` for ${payload.database}` : '';
  return {
    kind,
    severity: severityFor(kind),
    ...(payload.database ? { database: payload.database } : {}),
    ...(payload.backupId ? { backupId: payload.backupId } : {}),
    ...(payload.execution ? { execution: payload.execution } : {}),
    error: { name: redact(payload.error.Error, secrets), cause },
    summary: `${TITLES[kind]}${where}: ${redact(payload.error.Error, secrets)}${cause ? `: ${truncate(cause.split('\n')[0] ?? '', 300)}` : ''}`,
    nextSteps: nextStepsFor(kind, payload.database, payload.execution),
    at: now.toISOString(),
  };
}

/** One store's part in a run, as the dump task reports it. */
export interface StoreCopyReport {
  readonly role: string;
  readonly url: string;
  readonly status: 'stored' | 'failed';
  readonly error?: { readonly name: string; readonly message: string };
}

/**
 * `backup-degraded`: the backup landed in one store but not the other (or an earlier one could
 * not be copied across): the alert names each store that failed and the cause.
 */
export function degradedAlert(
  database: string,
  backupId: string,
  copies: readonly StoreCopyReport[],
  now: Date,
  execution?: string,
  secrets: readonly string[] = [],
): Alert {
  const failed = copies.filter((c) => c.status === 'failed');
  const stored = copies.filter((c) => c.status === 'stored');
  const lines = [
    `Backup ${backupId} of ${database} is stored in ${stored.map((c) => `the ${c.role} store (${c.url})`).join(' and ') || 'no store'} only.`,
    ...failed.map(
      (c) =>
        `Not stored in the ${c.role} store (${c.url}): ${redact(truncate(c.error?.message ?? 'unknown cause', 300), secrets)}`,
    ),
  ];
  const first = failed[0];
  return {
    kind: 'backup-degraded',
    severity: severityFor('backup-degraded'),
    database,
    backupId,
    ...(execution ? { execution } : {}),
    ...(first?.error
      ? { error: { name: first.error.name, cause: redact(truncate(first.error.message, 500), secrets) } }
      : {}),
    summary: lines.join('\n'),
    nextSteps: nextStepsFor('backup-degraded', database, execution),
    at: now.toISOString(),
  };
}

/** One thing a sync between the stores did not copy: the store that lacks it, and why. */
export interface StoreSyncProblem {
  /** The store that lacks it (for a conflict, the one the copy was meant for). */
  readonly role: string;
  readonly url: string;
  /** failed: not copied (or the stores could not be compared); conflict: both hold it, with other contents. */
  readonly status: 'failed' | 'conflict';
  /** What was not copied: a backup, a WAL file or base backup of a cluster, or the sync as a whole. */
  readonly subject: string;
  readonly cause: string;
}

/** The problems a run's sync met: how many, and the first few (a state's output is bounded). */
export interface StoreSyncProblems {
  readonly count: number;
  readonly shown: readonly StoreSyncProblem[];
}

/**
 * `store-sync-failed`: the scheduled run's backup succeeded, but the sync after it left a store
 * lacking what the other holds (a copy failed, or a name is held with other contents in each):
 * the stores drift apart until someone acts. Names each store and the cause.
 */
export function storeSyncAlert(
  database: string,
  backupId: string,
  problems: StoreSyncProblems,
  now: Date,
  execution?: string,
  secrets: readonly string[] = [],
): Alert {
  const conflicts = problems.shown.filter((p) => p.status === 'conflict').length;
  const lines = [
    `The sync between the stores after backup ${backupId} of ${database} left ${problems.count} ${problems.count === 1 ? 'thing' : 'things'} in one store only${conflicts > 0 ? ' or different in each' : ''}:`,
    ...problems.shown.map(
      (p) =>
        `${p.status === 'conflict' ? 'CONFLICT in' : 'Not copied to'} the ${p.role} store (${p.url}): ${p.subject}: ${redact(truncate(p.cause, 300), secrets)}`,
    ),
    ...(problems.count > problems.shown.length
      ? [`… and ${problems.count - problems.shown.length} more (pgbp sync names each)`]
      : []),
  ];
  return {
    kind: 'store-sync-failed',
    severity: severityFor('store-sync-failed'),
    database,
    backupId,
    ...(execution ? { execution } : {}),
    summary: truncate(lines.join('\n'), 3500),
    nextSteps: nextStepsFor('store-sync-failed', database, execution),
    at: now.toISOString(),
  };
}

/** `backup-stale`: the newest good backup is too old, or there is none. */
export function staleAlert(verdict: StalenessVerdict, now: Date): Alert {
  const summary =
    verdict.newestId === null
      ? `No good backup of ${verdict.database} exists (threshold ${verdict.staleAfterHours} h).`
      : `The newest good backup of ${verdict.database} is ${verdict.newestId}, taken ${verdict.ageHours} h ago at ${verdict.newestCreatedAt}; the threshold is ${verdict.staleAfterHours} h.`;
  return {
    kind: 'backup-stale',
    severity: 'critical',
    database: verdict.database,
    ...(verdict.newestId ? { backupId: verdict.newestId } : {}),
    summary,
    nextSteps: nextStepsFor('backup-stale', verdict.database, undefined),
    at: now.toISOString(),
  };
}

/** `size-anomaly` for a size verdict: a warning (from the state machine's Choice) or an error. */
export function sizeAlert(
  database: string,
  backupId: string,
  verdict: Pick<SizeVerdict, 'status' | 'reasons'>,
  now: Date,
  execution?: string,
): Alert {
  return {
    kind: 'size-anomaly',
    severity: verdict.status === 'error' ? 'critical' : 'warning',
    database,
    backupId,
    ...(execution ? { execution } : {}),
    summary: `Backup ${backupId} of ${database}: ${verdict.reasons.join('; ')}.`,
    nextSteps: nextStepsFor('size-anomaly', database, execution),
    at: now.toISOString(),
  };
}

/** What a restore reports, as much of it as a notice needs (the restore task's summary or its full report). */
export interface RestoreOutcome {
  readonly backupId: string;
  readonly target: string;
  /** The measured recovery time: from the request to the checks done. */
  readonly recoverySeconds: number;
  readonly checks?: readonly { readonly name: string; readonly passed: boolean }[];
  readonly warnings?: readonly string[];
}

/** `restore-completed`: a manual restore finished; informational, with the recovery time (RTO) it took. */
export function restoreCompletedAlert(
  database: string,
  report: RestoreOutcome,
  now: Date,
  execution?: string,
): Alert {
  const checks = report.checks ?? [];
  const passed = checks.filter((c) => c.passed).length;
  const lines = [
    `Backup ${report.backupId} of ${database} was restored into ${report.target}.`,
    `Recovery time (RTO): ${report.recoverySeconds.toFixed(1)} s, from the request to the checks done.`,
  ];
  if (checks.length > 0) lines.push(`Checks: ${passed} of ${checks.length} passed.`);
  const warnings = report.warnings ?? [];
  if (warnings.length > 0) lines.push(`Warnings: ${truncate(warnings.slice(0, 3).join(' | '), 500)}`);
  return {
    kind: 'restore-completed',
    severity: severityFor('restore-completed'),
    database,
    backupId: report.backupId,
    ...(execution ? { execution } : {}),
    summary: lines.join('\n'),
    nextSteps: nextStepsFor('restore-completed', database, execution),
    at: now.toISOString(),
  };
}

/** `retention-blocked`: retention deleted nothing (or not everything) for this reason. */
export function retentionBlockedAlert(database: string, reason: string, now: Date): Alert {
  return {
    kind: 'retention-blocked',
    severity: 'warning',
    database,
    summary: `Retention for ${database}: ${reason}.`,
    nextSteps: nextStepsFor('retention-blocked', database, undefined),
    at: now.toISOString(),
  };
}

/** `low-free-space`: the directory store (the NAS) is below its free-space floor. */
export function lowFreeSpaceAlert(store: string, verdict: FreeSpaceVerdict, now: Date): Alert {
  return {
    kind: 'low-free-space',
    severity: 'warning',
    summary: `${store} has ${Math.floor(verdict.freeRatio * 1000) / 10} % free (${verdict.freeBytes} of ${verdict.totalBytes} bytes), below the ${Math.round(verdict.minFreeRatio * 100)} % floor.`,
    nextSteps: nextStepsFor('low-free-space', undefined, undefined),
    at: now.toISOString(),
  };
}

/** `wal-archive-*`: the WAL archive of a cluster refused a file, fell behind, or is failing. */
export function walArchiveAlert(
  kind: 'wal-archive-conflict' | 'wal-archive-degraded' | 'wal-archive-stale' | 'wal-archive-failing',
  cluster: string,
  detail: string,
  now: Date,
): Alert {
  return {
    kind,
    severity: severityFor(kind),
    summary: `${TITLES[kind]} for cluster ${cluster}: ${truncate(detail, 500)}`,
    nextSteps: nextStepsFor(kind, undefined, undefined),
    at: now.toISOString(),
  };
}
