import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** A unique database name for one test, recognisable and safe to drop. */
export function uniqueDbName(label: string): string {
  return `pgbp_t_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
}

export async function withClient<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ database });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createDatabase(name: string, sql?: string): Promise<void> {
  await withClient('postgres', (c) => c.query(`create database "${name}"`));
  if (sql) await withClient(name, (c) => c.query(sql));
}

/** Drops a test database; only ever one this suite created (by its prefix). */
export async function dropDatabase(name: string): Promise<void> {
  if (!name.startsWith('pgbp_')) throw new Error(`refusing to drop ${name}: not a test database`);
  await withClient('postgres', (c) => c.query(`drop database if exists "${name}" with (force)`));
}

export async function databaseExists(name: string): Promise<boolean> {
  return withClient('postgres', async (c) => {
    const r = await c.query('select 1 from pg_database where datname = $1', [name]);
    return (r.rowCount ?? 0) > 0;
  });
}

export async function listDatabases(prefix: string): Promise<string[]> {
  return withClient('postgres', async (c) => {
    const r = await c.query<{ datname: string }>('select datname from pg_database where datname like $1', [
      `${prefix}%`,
    ]);
    return r.rows.map((row) => row.datname);
  });
}
