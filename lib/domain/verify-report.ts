import * as z from 'zod';
import type { OwnershipPlan } from './ownership.js';
import { CHECK_DEPTHS, type CheckDepth, type CheckResult } from './restore-checks.js';
import { type CopyUsed, STORE_ROLES } from './store-roles.js';

/**
 * What a restore did and found: the report of a verify (stored as `<backupId>.verify.json`
 * beside the backup) or of a restore (printed, and the task's output). One schema writes it and
 * reads it back.
 */

export const REPORT_VERSION = 1;

/** `verify`: into a scratch database that is always dropped; `restore`: into a named target. */
export type RestoreMode = 'verify' | 'restore';

export interface RestoreReport {
  readonly reportVersion: typeof REPORT_VERSION;
  readonly backupId: string;
  readonly database: string;
  readonly mode: RestoreMode;
  /** The database restored into (verify: the scratch database, gone by the time anyone reads this). */
  readonly target: string;
  /** Whether every check passed. */
  readonly passed: boolean;
  readonly startedAt: string;
  readonly finishedAt: string;
  /**
   * Phase durations. Streaming, fetching and restoring overlap (fetch ends when the last byte is
   * read, restore when pg_restore exits); spooling, the restore starts after the fetch.
   */
  readonly timings: {
    readonly fetchSeconds: number;
    readonly restoreSeconds: number;
    readonly checksSeconds: number;
  };
  /** The measured recovery time: from the request to the checks done. */
  readonly recoverySeconds: number;
  readonly bytesFetched: number;
  readonly jobs: number;
  readonly spooled: boolean;
  readonly schemas: readonly string[];
  /** Restore mode: an existing target was replaced (after the new one passed its checks). */
  readonly replaced: boolean;
  readonly backup: {
    readonly createdAt: string;
    readonly sizeBytes: number;
    readonly sha256: string;
    readonly codec: string;
    readonly storageClass: string;
  };
  /** How far the checks looked (absent in reports written before there was a choice). */
  readonly depth?: CheckDepth;
  readonly tables: readonly RestoredTable[];
  readonly checks: readonly CheckResult[];
  readonly warnings: readonly string[];
  /** With two stores: which store's copy was read, and why any other was passed over. */
  readonly copy?: CopyUsed;
  /** The backup's cluster globals as applied to the target server, when they were. */
  readonly globals?: RestoreGlobals;
  /** Whether owners and privileges were restored, and what was left out (absent in older reports). */
  readonly ownership?: RestoreOwnership;
}

/** What applying a backup's cluster globals did: by role name, never by statement text. */
export interface RestoreGlobals {
  readonly key: string;
  readonly rolePasswords: 'included' | 'omitted';
  readonly rolesCreated: readonly string[];
  /** Roles the target had already: never altered. */
  readonly rolesLeftAlone: readonly string[];
  /** `member in role`, for each membership granted. */
  readonly membershipsGranted: readonly string[];
  readonly tablespacesCreated: readonly string[];
  /** Memberships, tablespaces and statements left out, and why. */
  readonly notApplied: readonly string[];
  /** Statements that failed, by kind and name, with the server's message. */
  readonly failed: readonly string[];
}

export type RestoreOwnership = Omit<
  OwnershipPlan,
  'noOwner' | 'noPrivileges' | 'noTablespaces' | 'missingTablespaces' | 'droppedTablespaces'
> &
  Partial<Pick<OwnershipPlan, 'missingTablespaces' | 'droppedTablespaces'>>;

export interface RestoredTable {
  readonly schema: string;
  readonly name: string;
  readonly kind: 'table' | 'partitioned table';
  /** Counted after the restore; a partitioned table's are its partitions' (also listed). */
  readonly rows: number | null;
  /** Rows of the table in the backup, counted in the archive's data (absent when not counted). */
  readonly backupRows?: number;
  readonly estimate: number;
}

const seconds = z.number().nonnegative();
const KEPT = ['kept', 'dropped', 'not restored'] as const;

// Checks and tables may gain fields as the checks grow; a report stays readable by an older reader.
const checkSchema = z.looseObject({
  name: z.string(),
  kind: z.enum(['connect', 'tables', 'rows', 'content', 'owners', 'grants', 'assertion']),
  passed: z.boolean(),
  query: z.string().optional(),
  value: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
  expected: z.string().optional(),
  details: z.array(z.string()).optional(),
});

const tableSchema = z.looseObject({
  schema: z.string(),
  name: z.string(),
  kind: z.enum(['table', 'partitioned table']),
  rows: z.number().int().nullable(),
  backupRows: z.number().int().nonnegative().optional(),
  estimate: z.number(),
});

export const restoreReportSchema = z.object({
  reportVersion: z.literal(REPORT_VERSION),
  backupId: z.string().min(1),
  database: z.string().min(1),
  mode: z.enum(['verify', 'restore']),
  target: z.string().min(1),
  passed: z.boolean(),
  startedAt: z.string(),
  finishedAt: z.string(),
  timings: z.object({ fetchSeconds: seconds, restoreSeconds: seconds, checksSeconds: seconds }),
  recoverySeconds: seconds,
  bytesFetched: z.number().int().nonnegative(),
  jobs: z.number().int().positive(),
  spooled: z.boolean(),
  schemas: z.array(z.string()),
  replaced: z.boolean(),
  backup: z.object({
    createdAt: z.string(),
    sizeBytes: z.number().int().nonnegative(),
    sha256: z.string(),
    codec: z.string(),
    storageClass: z.string(),
  }),
  depth: z.enum(CHECK_DEPTHS).optional(),
  tables: z.array(tableSchema),
  checks: z.array(checkSchema),
  warnings: z.array(z.string()),
  copy: z
    .object({
      role: z.enum(STORE_ROLES),
      url: z.string(),
      passedOver: z.array(z.object({ role: z.enum(STORE_ROLES), url: z.string(), reason: z.string() })),
    })
    .optional(),
  globals: z
    .object({
      key: z.string(),
      rolePasswords: z.enum(['included', 'omitted']),
      rolesCreated: z.array(z.string()),
      rolesLeftAlone: z.array(z.string()),
      membershipsGranted: z.array(z.string()),
      tablespacesCreated: z.array(z.string()),
      notApplied: z.array(z.string()),
      failed: z.array(z.string()),
    })
    .optional(),
  ownership: z
    .object({
      owners: z.enum(KEPT),
      privileges: z.enum(KEPT),
      missingRoles: z.array(z.string()),
      droppedOwners: z.array(
        z.object({ role: z.string(), missing: z.boolean(), objects: z.array(z.string()) }),
      ),
      droppedPrivileges: z.array(z.object({ object: z.string(), roles: z.array(z.string()) })),
      missingTablespaces: z.array(z.string()).optional(),
      droppedTablespaces: z
        .array(z.object({ tablespace: z.string(), objects: z.array(z.string()) }))
        .optional(),
    })
    .optional(),
}) satisfies z.ZodType<RestoreReport>;

/** The report as stored: validated, then JSON. A report that does not fit the schema is a bug, and throws. */
export function formatRestoreReport(report: RestoreReport): string {
  return `${JSON.stringify(restoreReportSchema.parse(report), null, 2)}\n`;
}

/** A stored report, validated; throws a ZodError naming what does not fit. */
export function parseRestoreReport(raw: unknown): RestoreReport {
  return restoreReportSchema.parse(raw);
}

/** What a listing needs of a stored report: which backup it checked and whether every check passed. */
export const verifyOutcomeSchema = restoreReportSchema.pick({ backupId: true, passed: true });
export type VerifyOutcome = z.infer<typeof verifyOutcomeSchema>;

/** Rows restored: the partitions' rows, not again their partitioned tables'. */
export function rowsRestored(report: Pick<RestoreReport, 'tables'>): number {
  return report.tables.reduce((n, t) => n + (t.kind === 'table' ? (t.rows ?? 0) : 0), 0);
}
