import type { Readable } from 'node:stream';
import type pg from 'pg';
import { InvalidRestoreRequestError } from '../domain/errors.js';
import { type Child, type Spawn, startChild } from '../platform/processes.js';
import { type Connection, libpqEnv, pgClient, quoteIdent } from './pg-tools.js';
import { serverVersionOf, type Version } from './versions.js';

export interface PgRestoreOptions {
  /** The server to restore into; `database` is the target. */
  readonly connection: Connection;
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  /** A seekable archive file; without one, pg_restore reads the archive from its stdin. */
  readonly file?: string;
  /**
   * Another child's stdout to read the archive from, joined at the OS level so the bytes do not
   * pass through this process; its `stdin` is then null.
   */
  readonly stdinFrom?: Readable;
  readonly jobs: number;
  readonly noOwner: boolean;
  readonly noPrivileges: boolean;
  /** Create every object in the database's default tablespace (the target lacks one it names). */
  readonly noTablespaces?: boolean;
  readonly schemas: readonly string[];
}

/** A value for a libpq connection string: quoted, so a name is never read as key=value pairs. */
export function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * pg_restore's arguments. `--exit-on-error`: a restore that hit an error proves nothing and is
 * dropped, so there is no point going on. The target goes in as a connection string naming only
 * the database; host, port and user come from the libpq environment, the password from PGPASSWORD.
 */
export function pgRestoreArgs(o: Omit<PgRestoreOptions, 'env' | 'spawn' | 'stdinFrom'>): string[] {
  const args = [
    '--exit-on-error',
    '--no-password',
    `--dbname=dbname=${conninfoValue(o.connection.database)}`,
  ];
  if (o.noOwner) args.push('--no-owner');
  if (o.noPrivileges) args.push('--no-privileges');
  if (o.noTablespaces) args.push('--no-tablespaces');
  for (const schema of o.schemas) args.push(`--schema=${schema}`);
  if (o.jobs > 1) {
    if (!o.file) throw new RangeError('parallel pg_restore needs a seekable file');
    args.push(`--jobs=${o.jobs}`);
  }
  if (o.file) args.push(o.file);
  return args;
}

/**
 * Starts pg_restore into `connection.database`, from a file or from its stdin (`stdin` of the
 * child is then where the archive goes); its `warnings()` are the `pg_restore: warning: …` lines.
 */
export function startPgRestore(o: PgRestoreOptions): Child {
  return startChild('pg_restore', pgRestoreArgs(o), {
    env: libpqEnv(o.connection, o.env),
    stdin: o.file ? 'ignore' : (o.stdinFrom ?? 'pipe'),
    secrets: [o.connection.password],
    warningPrefix: /^pg_restore: warning:/,
    ...(o.spawn ? { spawn: o.spawn } : {}),
  });
}

// The databases a restore creates, checks and drops, through a maintenance database.

async function withAdmin<T>(
  c: Connection,
  maintenance: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await pgClient(c, maintenance);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The server's version, from `server_version_num`. */
export async function serverVersion(c: Connection, maintenance: string): Promise<Version> {
  return withAdmin(c, maintenance, async (client) => {
    const r = await client.query<{ v: string; num: string }>(
      `select current_setting('server_version') as v, current_setting('server_version_num') as num`,
    );
    return serverVersionOf(r.rows[0]?.v ?? '', r.rows[0]?.num ?? '');
  });
}

export async function databaseExists(c: Connection, maintenance: string, name: string): Promise<boolean> {
  return withAdmin(c, maintenance, async (client) => {
    const r = await client.query('select 1 from pg_database where datname = $1', [name]);
    return (r.rowCount ?? 0) > 0;
  });
}

/**
 * Creates an empty database from template0, so nothing added to template1 on this server gets in
 * the way of the restore. Another session creating the same name first is a refused request.
 */
export async function createEmptyDatabase(c: Connection, maintenance: string, name: string): Promise<void> {
  await withAdmin(c, maintenance, async (client) => {
    try {
      await client.query(`create database ${quoteIdent(name)} template template0`);
    } catch (error) {
      if ((error as { code?: string }).code === '42P04') {
        throw new InvalidRestoreRequestError(`database ${name} already exists`, { cause: error });
      }
      throw error;
    }
  });
}

/** Names of the databases on the server that start with `prefix`. */
export async function databasesStartingWith(
  c: Connection,
  maintenance: string,
  prefix: string,
): Promise<string[]> {
  return withAdmin(c, maintenance, async (client) => {
    const r = await client.query<{ datname: string }>(
      'select datname from pg_database where left(datname, length($1)) = $1 order by 1',
      [prefix],
    );
    return r.rows.map((row) => row.datname);
  });
}

/** Drops a database, disconnecting whoever is still in it. */
export async function dropDatabase(c: Connection, maintenance: string, name: string): Promise<void> {
  await withAdmin(c, maintenance, async (client) => {
    await client.query(`drop database if exists ${quoteIdent(name)} with (force)`);
  });
}

/** Puts `fresh` in place of `old`: drops `old` (disconnecting its sessions), renames `fresh` to it. */
export async function swapDatabase(
  c: Connection,
  maintenance: string,
  fresh: string,
  old: string,
): Promise<void> {
  await withAdmin(c, maintenance, async (client) => {
    await client.query(`drop database if exists ${quoteIdent(old)} with (force)`);
    await client.query(`alter database ${quoteIdent(fresh)} rename to ${quoteIdent(old)}`);
  });
}

/** Creates schemas that `pg_restore --schema` will fill: it restores what is in them, not the schemas. */
export async function createSchemas(c: Connection, schemas: readonly string[]): Promise<void> {
  if (schemas.length === 0) return;
  const client = await pgClient(c);
  await client.connect();
  try {
    for (const s of schemas) await client.query(`create schema if not exists ${quoteIdent(s)}`);
  } finally {
    await client.end().catch(() => {});
  }
}
