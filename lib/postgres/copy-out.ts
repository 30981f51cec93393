import { describeExit, exitedCleanly, type Spawn, startChild } from '../platform/processes.js';
import { CopyLines } from './copy-lines.js';
import { conninfoValue } from './pg-restore.js';
import { type Connection, libpqEnv, quoteIdent } from './pg-tools.js';

/**
 * A table's data read back as pg_dump reads it (`COPY <table> <columns> TO STDOUT`, in the session
 * settings pg_dump sets, through psql so that the libpq environment pg_dump saw applies too),
 * counted and digested line by line as {@link CopyLines} does for the archive.
 */

/** The settings that shape COPY text which pg_dump does not set, as the dump's session had them. */
export interface OutputSettings {
  /** The client encoding the archive's data is in (its ENCODING entry). */
  readonly encoding?: string;
  readonly timeZone?: string;
  readonly byteaOutput?: string;
  readonly lcMonetary?: string;
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The statements psql runs before the COPY: pg_dump's own session settings, then the dump's. */
export function sessionStatements(settings: OutputSettings): string[] {
  const statements = [
    'SET TRANSACTION READ ONLY',
    'SET LOCAL DateStyle = ISO',
    'SET LOCAL IntervalStyle = postgres',
    'SET LOCAL extra_float_digits = 3',
    'SET LOCAL synchronize_seqscans = off',
    'SET LOCAL statement_timeout = 0',
    'SET LOCAL row_security = off',
  ];
  if (settings.encoding) statements.push(`SET LOCAL client_encoding = ${literal(settings.encoding)}`);
  if (settings.timeZone) statements.push(`SET LOCAL TimeZone = ${literal(settings.timeZone)}`);
  if (settings.byteaOutput) statements.push(`SET LOCAL bytea_output = ${literal(settings.byteaOutput)}`);
  if (settings.lcMonetary) statements.push(`SET LOCAL lc_monetary = ${literal(settings.lcMonetary)}`);
  return statements;
}

export interface CopyOutRequest {
  /** The server and database the table is in. */
  readonly connection: Connection;
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  readonly schema: string;
  readonly name: string;
  /** pg_dump's column list for the table, as the archive's COPY statement has it. */
  readonly columns: string;
  readonly settings: OutputSettings;
  readonly signal?: AbortSignal;
}

export interface TableDigest {
  readonly rows: number;
  readonly digest: string;
}

/** Reads one table back with COPY and digests its rows; throws when psql fails, with its stderr. */
export async function digestRestoredTable(r: CopyOutRequest): Promise<TableDigest> {
  const copy = `COPY ${quoteIdent(r.schema)}.${quoteIdent(r.name)} ${r.columns} TO STDOUT`;
  const args = ['-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=1', '--single-transaction'];
  for (const statement of sessionStatements(r.settings)) args.push('-c', statement);
  args.push('-c', copy, `--dbname=dbname=${conninfoValue(r.connection.database)}`);
  const child = startChild('psql', args, {
    env: libpqEnv(r.connection, r.env),
    stdout: 'pipe',
    secrets: [r.connection.password],
    ...(r.spawn ? { spawn: r.spawn } : {}),
  });
  const stop = () => child.stop();
  r.signal?.addEventListener('abort', stop, { once: true });
  try {
    const lines = new CopyLines(true);
    for await (const chunk of child.stdout ?? []) lines.push(chunk as Buffer);
    lines.finish();
    const exit = await child.exited;
    if (!exitedCleanly(exit))
      throw new Error(`reading ${r.schema}.${r.name} back failed: ${describeExit(exit)}`);
    return { rows: lines.rows, digest: lines.digest() as string };
  } finally {
    r.signal?.removeEventListener('abort', stop);
    if (child.running()) {
      child.stop();
      await child.exited;
    }
  }
}
