/**
 * What a restored database is checked against, and how each check is judged: the tables of the
 * manifest, the rows (and at content depth the digests) of each table's data in the archive, and
 * the SQL assertions configured per database. Pure: the restore gathers the facts, this decides.
 */

export type CheckKind = 'connect' | 'tables' | 'rows' | 'content' | 'owners' | 'grants' | 'assertion';

/** How far a verify looks: every table's row count, or also every row's content. */
export const CHECK_DEPTHS = ['rows', 'content'] as const;
export type CheckDepth = (typeof CHECK_DEPTHS)[number];

export interface CheckResult {
  readonly name: string;
  readonly kind: CheckKind;
  readonly passed: boolean;
  readonly query?: string;
  /** What was seen: a query's value, a count, or a short account of what differed. */
  readonly value?: string | number | boolean | null;
  readonly expected?: string;
  /** The offending tables, at most a few dozen, for the report. */
  readonly details?: readonly string[];
}

export interface Expectation {
  readonly atLeast?: number;
  readonly atMost?: number;
  readonly equals?: number | string | boolean;
  readonly isTrue?: true;
}

export interface AssertionSpec {
  readonly name: string;
  readonly sql: string;
  readonly expect: Expectation;
}

/** The outcome of running an assertion's query: the first column of the first row, or the error. */
export type QueryOutcome = { readonly value: unknown } | { readonly error: string };

export interface TableRef {
  readonly schema: string;
  readonly name: string;
}

export interface ManifestTable extends TableRef {
  readonly kind: 'table' | 'partitioned table';
  readonly rowEstimate: number;
  /** The estimate came from statistics analyzed after the table's last change (absent: unknown). */
  readonly statsFresh?: boolean;
  /** The table's owner in the source when dumped (absent in older manifests). */
  readonly owner?: string;
  /** The table's privileges in the source (`relacl`, aclitem text; null: the defaults). */
  readonly acl?: readonly string[] | null;
}

/** What a restored table's catalog says of its owner and privileges. */
export interface TableAccess {
  readonly owner: string;
  readonly acl: readonly string[] | null;
}

function aclText(acl: readonly string[] | null | undefined): string {
  return acl ? [...acl].sort().join(',') : '(defaults)';
}

/** Every table in scope whose source owner is known belongs to that role in the restored database. */
export function checkOwners(
  tables: readonly ManifestTable[],
  restored: ReadonlyMap<string, TableAccess>,
): CheckResult {
  const known = tables.filter((t) => t.owner !== undefined && restored.has(tableKey(t)));
  const offending = known
    .filter((t) => restored.get(tableKey(t))?.owner !== t.owner)
    .map((t) => `${tableKey(t)}: owned by ${restored.get(tableKey(t))?.owner}, in the source by ${t.owner}`);
  return {
    name: "every table has the source's owner",
    kind: 'owners',
    passed: offending.length === 0,
    value: `${known.length - offending.length} of ${known.length} tables`,
    expected: "each table's owner as recorded in the manifest",
    ...(offending.length > 0 ? { details: capped(offending) } : {}),
  };
}

/** Every table in scope whose source privileges are known has exactly those privileges restored. */
export function checkGrants(
  tables: readonly ManifestTable[],
  restored: ReadonlyMap<string, TableAccess>,
): CheckResult {
  const known = tables.filter((t) => t.acl !== undefined && restored.has(tableKey(t)));
  const offending = known
    .filter((t) => aclText(restored.get(tableKey(t))?.acl) !== aclText(t.acl))
    .map(
      (t) => `${tableKey(t)}: ${aclText(restored.get(tableKey(t))?.acl)}, in the source ${aclText(t.acl)}`,
    );
  return {
    name: "every table has the source's grants",
    kind: 'grants',
    passed: offending.length === 0,
    value: `${known.length - offending.length} of ${known.length} tables`,
    expected: "each table's privileges as recorded in the manifest",
    ...(offending.length > 0 ? { details: capped(offending) } : {}),
  };
}

/** The prefix of verify's scratch databases, which nothing else may use. */
export const SCRATCH_PREFIX = 'pgbp_verify_';

/**
 * A scratch database older than this is a leftover: its verify was killed before it could drop
 * it (a stopped container, a lost host). Well past any restore's time limit.
 */
export const SCRATCH_MAX_AGE_MS = 24 * 3600 * 1000;

const STAMP_DIGITS = 7;

/** A scratch database's suffix: when it was made (UTC seconds, base 36) and a random part. */
export function scratchSuffix(at: Date, random: string): string {
  return `${Math.floor(at.getTime() / 1000)
    .toString(36)
    .padStart(STAMP_DIGITS, '0')}${random}`;
}

/** When a scratch database was made, read from its name; undefined for any other name. */
export function scratchCreatedAt(name: string): Date | undefined {
  if (!name.startsWith(SCRATCH_PREFIX)) return undefined;
  const m = /_([0-9a-z]{7})[0-9a-f]{8}$/.exec(name);
  if (!m?.[1]) return undefined;
  return new Date(Number.parseInt(m[1], 36) * 1000);
}

/** The scratch databases among `names` that were made more than `maxAgeMs` before `now`. */
export function leftoverScratch(
  names: readonly string[],
  now: Date,
  maxAgeMs = SCRATCH_MAX_AGE_MS,
): string[] {
  return names.filter((name) => {
    const at = scratchCreatedAt(name);
    return at !== undefined && now.getTime() - at.getTime() > maxAgeMs;
  });
}

/** Below this many rows either way, a difference from the estimate is noise, whatever the tolerance. */
export const ROW_SLACK = 10;

const MAX_DETAILS = 50;

/** At most {@link MAX_DETAILS} lines, the last saying how many more there were. */
function capped(lines: readonly string[]): string[] {
  if (lines.length <= MAX_DETAILS) return [...lines];
  return [...lines.slice(0, MAX_DETAILS - 1), `and ${lines.length - MAX_DETAILS + 1} more`];
}

export function tableKey(t: TableRef): string {
  return `${t.schema}.${t.name}`;
}

/** The manifest's tables that a restore limited to `schemas` (none: all) should have brought back. */
export function tablesInScope<T extends TableRef>(tables: readonly T[], schemas: readonly string[]): T[] {
  if (schemas.length === 0) return [...tables];
  const wanted = new Set(schemas);
  return tables.filter((t) => wanted.has(t.schema));
}

/** Every table in scope exists in the restored database. */
export function checkTablesPresent(expected: readonly TableRef[], present: ReadonlySet<string>): CheckResult {
  const missing = expected.map(tableKey).filter((k) => !present.has(k));
  return {
    name: 'every table in the manifest was restored',
    kind: 'tables',
    passed: missing.length === 0,
    value: expected.length - missing.length,
    expected: `${expected.length} tables`,
    ...(missing.length > 0 ? { details: capped(missing.map((k) => `missing: ${k}`)) } : {}),
  };
}

export type RowVerdict =
  | { readonly compared: false; readonly why: 'unknown estimate' | 'zero estimate' | 'not restored' }
  | { readonly compared: true; readonly passed: boolean; readonly allowed: number };

/**
 * Compares a restored row count with the manifest's estimate (pg_class.reltuples at dump time).
 * Estimates are statistics, not counts, so only what they can say is judged:
 * - a negative estimate means the table was never analyzed: not compared;
 * - a zero estimate cannot tell an empty table from one analyzed before it was filled: not compared;
 * - otherwise the count must lie within `tolerance` × estimate of it, and never closer than
 *   {@link ROW_SLACK} rows is demanded, so small tables do not fail on a few rows of churn.
 */
export function judgeRowCount(estimate: number, rows: number | undefined, tolerance: number): RowVerdict {
  if (rows === undefined) return { compared: false, why: 'not restored' };
  if (estimate < 0) return { compared: false, why: 'unknown estimate' };
  if (estimate === 0) return { compared: false, why: 'zero estimate' };
  const allowed = Math.max(Math.ceil(estimate * tolerance), ROW_SLACK);
  return { compared: true, passed: Math.abs(rows - estimate) <= allowed, allowed };
}

/**
 * The leaf tables to compare, in scope: the manifest's and any the archive holds data for.
 * Partitioned tables hold no rows of their own: their partitions are compared, once each.
 */
function leavesInScope(
  tables: readonly ManifestTable[],
  archived: ReadonlyMap<string, unknown>,
  schemas: readonly string[],
): string[] {
  const keys = new Set(tables.filter((t) => t.kind === 'table').map(tableKey));
  const wanted = new Set(schemas);
  for (const key of archived.keys()) {
    const schema = key.slice(0, key.indexOf('.'));
    if (schemas.length === 0 || wanted.has(schema)) keys.add(key);
  }
  const partitioned = new Set(tables.filter((t) => t.kind === 'partitioned table').map(tableKey));
  return [...keys].filter((k) => !partitioned.has(k)).sort();
}

/**
 * The row check: every table in scope holds exactly as many rows as the backup's data for it
 * (counted in the archive as the restore read it; a table without data in the archive holds
 * none). Tables not restored at all are the presence check's to report.
 */
export function checkExactRowCounts(
  tables: readonly ManifestTable[],
  restored: ReadonlyMap<string, number>,
  archived: ReadonlyMap<string, number>,
  schemas: readonly string[] = [],
): CheckResult {
  const offending: string[] = [];
  let compared = 0;
  for (const key of leavesInScope(tables, archived, schemas)) {
    const rows = restored.get(key);
    if (rows === undefined) continue;
    compared += 1;
    const expected = archived.get(key) ?? 0;
    if (rows !== expected) offending.push(`${key}: ${rows} rows restored, ${expected} in the backup`);
  }
  return {
    name: "every table holds exactly the backup's rows",
    kind: 'rows',
    passed: offending.length === 0,
    value: `${compared - offending.length} of ${compared} tables hold exactly the backup's rows`,
    expected: "each table's row count as counted in the archive's data",
    ...(offending.length > 0 ? { details: capped(offending) } : {}),
  };
}

/**
 * The content check: every table's rows, read back as pg_dump reads them, have the digest of that
 * table's data in the archive (a multiset digest: row order does not matter, every byte of every
 * row does).
 */
export function checkContent(
  tables: readonly ManifestTable[],
  restored: ReadonlyMap<string, string>,
  archived: ReadonlyMap<string, string>,
  schemas: readonly string[] = [],
): CheckResult {
  const offending: string[] = [];
  let compared = 0;
  for (const key of leavesInScope(tables, archived, schemas)) {
    const digest = restored.get(key);
    const expected = archived.get(key);
    if (digest === undefined || expected === undefined) continue;
    compared += 1;
    if (digest !== expected) offending.push(`${key}: its rows differ from the backup's`);
  }
  return {
    name: "every table holds exactly the backup's data",
    kind: 'content',
    passed: offending.length === 0,
    value: `${compared - offending.length} of ${compared} tables hold exactly the backup's data`,
    expected: "each table's rows, byte for byte, as in the archive's data",
    ...(offending.length > 0 ? { details: capped(offending) } : {}),
  };
}

/**
 * Warnings, never failures, where the backup holds far fewer rows than the source's statistics
 * claimed when it was taken. Only fresh statistics (analyzed after the table's last change) say
 * anything; where they are stale, absent or unknown, nothing is said.
 */
export function estimateWarnings(
  tables: readonly ManifestTable[],
  archived: ReadonlyMap<string, number>,
  tolerance: number,
): string[] {
  const warnings: string[] = [];
  for (const t of tables) {
    if (t.kind !== 'table' || t.statsFresh !== true || t.rowEstimate <= 0) continue;
    const rows = archived.get(tableKey(t));
    if (rows === undefined) continue;
    const allowed = Math.max(Math.ceil(t.rowEstimate * tolerance), ROW_SLACK);
    if (t.rowEstimate - rows > allowed) {
      warnings.push(
        `${tableKey(t)}: the backup holds ${rows} rows, fresh statistics of the source estimated ${t.rowEstimate} when it was taken`,
      );
    }
  }
  return warnings;
}

/**
 * The check an archive whose data could not be counted gets instead: restored counts against
 * the manifest's estimates (which it names as such).
 */
export function checkRowCounts(
  tables: readonly ManifestTable[],
  rows: ReadonlyMap<string, number>,
  tolerance: number,
): CheckResult {
  const offending: string[] = [];
  let compared = 0;
  let skipped = 0;
  for (const t of tables) {
    const count = rows.get(tableKey(t));
    const verdict = judgeRowCount(t.rowEstimate, count, tolerance);
    if (!verdict.compared) {
      skipped += 1;
      continue;
    }
    compared += 1;
    if (!verdict.passed) {
      offending.push(`${tableKey(t)}: ${count} rows, estimate ${t.rowEstimate} (±${verdict.allowed})`);
    }
  }
  return {
    name: "row counts near the manifest's estimates (the archive's rows could not be counted)",
    kind: 'rows',
    passed: offending.length === 0,
    value: `${compared - offending.length} of ${compared} compared tables within tolerance, ${skipped} without a usable estimate`,
    expected: `within ${Math.round(tolerance * 100)}% (at least ±${ROW_SLACK} rows) of each estimate`,
    ...(offending.length > 0 ? { details: capped(offending) } : {}),
  };
}

/** The message of a failed restore check: each failed check's name, its query and the value seen. */
export function describeFailedChecks(checks: readonly CheckResult[]): string {
  return checks
    .filter((c) => !c.passed)
    .map((c) => {
      const query = c.query ? ` (${c.query.replace(/\s+/g, ' ').trim()})` : '';
      const expected = c.expected ? `, expected ${c.expected}` : '';
      const details = c.details?.length ? `: ${c.details.join('; ')}` : '';
      return `"${c.name}"${query} saw ${JSON.stringify(c.value ?? null)}${expected}${details}`;
    })
    .join('; ');
}

/**
 * A scratch database name for verifying a backup of `database`: recognisable, unique by `suffix`,
 * and short enough (63 bytes) that PostgreSQL does not truncate it into another name.
 */
export function scratchDatabaseName(database: string, suffix: string): string {
  const room = 63 - SCRATCH_PREFIX.length - suffix.length - 1;
  return `${SCRATCH_PREFIX}${database.slice(0, Math.max(0, room))}_${suffix}`;
}
