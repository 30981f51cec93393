import { type BackupSelector, parseSelector } from '../catalog/backups.js';
import { isKeyableDatabaseName } from '../domain/backup-layout.js';
import { InvalidRestoreRequestError } from '../domain/errors.js';
import { CHECK_DEPTHS, type CheckDepth, SCRATCH_PREFIX } from '../domain/restore-checks.js';
import type { RestoreMode } from '../domain/verify-report.js';

/** A validated restore request: what to restore, from which backup, into what. */
export interface RestoreRequest {
  readonly mode: RestoreMode;
  /** The source database, whose backups are searched. */
  readonly database: string;
  /** `latest` or a backup id. */
  readonly backup: string;
  /** With `latest`: the newest backup taken before this ISO 8601 time. */
  readonly before?: string;
  /** Restore mode only: the database to create (or replace). */
  readonly targetDatabase?: string;
  /** Restore only these schemas' objects; empty means everything. */
  readonly schemas: readonly string[];
  /** Parallel pg_restore jobs; the configured default when absent. */
  readonly jobs?: number;
  /** Restore mode only: replace an existing target, swapping it only after the new one passed its checks. */
  readonly replace: boolean;
  /** How far the checks look; the database's configured depth when absent. */
  readonly depth?: CheckDepth;
  /**
   * Apply the backup's cluster globals to the target server first: create the roles (and
   * tablespaces) it lacks, leave existing ones alone.
   */
  readonly withGlobals: boolean;
  /** Leave owners (privileges) out even where the roles exist; the configured policy when absent. */
  readonly noOwner?: boolean;
  readonly noPrivileges?: boolean;
}

/** PostgreSQL truncates identifiers longer than this many bytes; a truncated name would be another name. */
export const MAX_IDENTIFIER_BYTES = 63;

/** Databases a restore never creates or replaces: the server's own. */
const RESERVED_TARGETS: ReadonlySet<string> = new Set(['postgres', 'template0', 'template1']);

/**
 * Why `name` is not an identifier this project passes to PostgreSQL and its tools, or undefined
 * when it is fine. Quotes and backslashes are refused outright, although quoting would cope:
 * they never appear in real schema or database names, and refusing them closes every quoting gap
 * between SQL, libpq connection strings and pg_restore's arguments.
 */
export function identifierProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES)
    return `is longer than ${MAX_IDENTIFIER_BYTES} bytes`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a control character';
  if (/["'\\]/.test(name)) return 'contains a quote or a backslash';
  if (name !== name.trim()) return 'starts or ends with white space';
  return undefined;
}

function fail(field: string, message: string): never {
  throw new InvalidRestoreRequestError(`${field}: ${message}`);
}

function optionalString(raw: Record<string, unknown>, field: string): string | undefined {
  const value = raw[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(field, `expected a string, got ${typeof value}`);
  return value;
}

function identifier(field: string, value: string): string {
  const problem = identifierProblem(value);
  if (problem) fail(field, `${JSON.stringify(value)} ${problem}`);
  return value;
}

/**
 * Validates a restore request from any source (CLI flags, a Step Functions input, a task's
 * environment) before anything is touched. Every refusal is an InvalidRestoreRequestError that
 * starts with the offending field.
 */
export function parseRestoreRequest(raw: unknown): RestoreRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidRestoreRequestError('a restore request must be an object');
  }
  const input = raw as Record<string, unknown>;
  const known = new Set([
    'mode',
    'database',
    'backup',
    'before',
    'targetDatabase',
    'schemas',
    'jobs',
    'replace',
    'depth',
    'withGlobals',
    'noOwner',
    'noPrivileges',
  ]);
  const unknown = Object.keys(input).filter((k) => !known.has(k));
  if (unknown.length > 0) fail(unknown[0] as string, 'is not a field of a restore request');

  const mode = optionalString(input, 'mode') ?? 'restore';
  if (mode !== 'verify' && mode !== 'restore')
    fail('mode', `expected "verify" or "restore", got ${JSON.stringify(mode)}`);

  const database = optionalString(input, 'database');
  if (database === undefined) fail('database', 'is required');
  if (!isKeyableDatabaseName(database)) {
    fail('database', `${JSON.stringify(database)} is not a database name backups are kept under`);
  }
  const backup = optionalString(input, 'backup') ?? 'latest';
  const before = optionalString(input, 'before');
  try {
    parseSelector(database, 'latest', before);
  } catch (error) {
    fail('before', (error as Error).message);
  }
  if (backup !== 'latest' && before !== undefined)
    fail('before', 'applies to "latest" only, not to a backup id');
  try {
    parseSelector(database, backup);
  } catch (error) {
    fail('backup', (error as Error).message);
  }

  const schemasRaw = input.schemas ?? [];
  if (!Array.isArray(schemasRaw)) fail('schemas', 'expected a list of schema names');
  const schemas = [
    ...new Set(
      schemasRaw.map((s, i) => {
        if (typeof s !== 'string') fail(`schemas[${i}]`, `expected a string, got ${typeof s}`);
        return identifier(`schemas[${i}]`, s);
      }),
    ),
  ];

  let jobs: number | undefined;
  if (input.jobs !== undefined && input.jobs !== null) {
    const n = typeof input.jobs === 'string' && /^\d+$/.test(input.jobs) ? Number(input.jobs) : input.jobs;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 64) {
      fail('jobs', `expected a whole number from 1 to 64, got ${JSON.stringify(input.jobs)}`);
    }
    jobs = n;
  }

  const replace = input.replace ?? false;
  if (typeof replace !== 'boolean') fail('replace', `expected true or false, got ${JSON.stringify(replace)}`);

  const flag = (field: string): boolean | undefined => {
    const value = input[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') fail(field, `expected true or false, got ${JSON.stringify(value)}`);
    return value;
  };
  const withGlobals = flag('withGlobals') ?? false;
  const noOwner = flag('noOwner');
  const noPrivileges = flag('noPrivileges');

  const depth = optionalString(input, 'depth');
  if (depth !== undefined && !(CHECK_DEPTHS as readonly string[]).includes(depth)) {
    fail(
      'depth',
      `expected ${CHECK_DEPTHS.map((d) => JSON.stringify(d)).join(' or ')}, got ${JSON.stringify(depth)}`,
    );
  }

  const targetDatabase = optionalString(input, 'targetDatabase');
  if (mode === 'verify') {
    if (targetDatabase !== undefined)
      fail('targetDatabase', 'verify restores into a scratch database of its own');
    if (schemas.length > 0) fail('schemas', 'verify restores the whole backup');
    if (replace) fail('replace', 'verify never replaces a database');
  } else {
    if (targetDatabase === undefined) fail('targetDatabase', 'is required to restore');
    identifier('targetDatabase', targetDatabase);
    if (targetDatabase === database) {
      fail('targetDatabase', `is the source database ${database}; restore into a new database`);
    }
    if (RESERVED_TARGETS.has(targetDatabase))
      fail('targetDatabase', `${targetDatabase} belongs to the server`);
    if (targetDatabase.startsWith(SCRATCH_PREFIX)) {
      fail(
        'targetDatabase',
        `names starting with ${SCRATCH_PREFIX} are reserved for verify's scratch databases`,
      );
    }
  }

  return Object.freeze({
    mode,
    database,
    backup,
    ...(before !== undefined ? { before } : {}),
    ...(targetDatabase !== undefined && mode === 'restore' ? { targetDatabase } : {}),
    schemas,
    ...(jobs !== undefined ? { jobs } : {}),
    replace,
    ...(depth !== undefined ? { depth: depth as CheckDepth } : {}),
    withGlobals,
    ...(noOwner !== undefined ? { noOwner } : {}),
    ...(noPrivileges !== undefined ? { noPrivileges } : {}),
  });
}

/** The backup selector of a validated request. */
export function selectorOf(request: RestoreRequest): BackupSelector {
  return parseSelector(request.database, request.backup, request.before);
}
