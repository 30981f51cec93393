import pg from 'pg';
import { BENCH_DB, ensureBenchDatabase } from './bench-db.js';

/**
 * A database for what parallel restore can do: the quarter-size benchmark database with its
 * payments split over four tables. pg_restore --jobs restores different tables at once, never
 * one table in parts, so on the main benchmark database (one table holds nearly everything) it
 * has nothing to share out. Made once from the quarter database and reused.
 */
export const MULTI_DB = `${BENCH_DB}_multi`;
const PARTS = 4;

async function tablesOf(database: string): Promise<string[] | undefined> {
  const client = new pg.Client({ database });
  try {
    await client.connect();
  } catch {
    return undefined;
  }
  try {
    const r = await client.query<{ relname: string }>(
      `select relname from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace order by 1`,
    );
    return r.rows.map((row) => row.relname);
  } finally {
    await client.end();
  }
}

export async function ensureMultiTableDatabase(
  scaleMb = Number(process.env.BENCH_SCALE_MB ?? 1000),
): Promise<{ database: string; sizeBytes: number; tables: number }> {
  const base = await ensureBenchDatabase(Math.round(scaleMb / 4), `${BENCH_DB}_quarter`);
  const admin = new pg.Client({ database: 'postgres' });
  await admin.connect();
  const sizeOf = async (name: string) => {
    const r = await admin.query<{ size: string }>(
      'select pg_database_size(datname)::text as size from pg_database where datname = $1',
      [name],
    );
    return r.rows[0] ? Number(r.rows[0].size) : undefined;
  };
  try {
    const wanted = Array.from({ length: PARTS }, (_, k) => `payments_${k}`);
    const existing = await sizeOf(MULTI_DB);
    const tables = await tablesOf(MULTI_DB);
    if (
      existing !== undefined &&
      Math.abs(existing - base.sizeBytes) / base.sizeBytes < 0.25 &&
      wanted.every((t) => tables?.includes(t))
    ) {
      return { database: MULTI_DB, sizeBytes: existing, tables: tables?.length ?? 0 };
    }
    await admin.query(`drop database if exists "${MULTI_DB}" with (force)`);
    // A template must have no other sessions; another benchmark may be reading it for a moment.
    for (let attempt = 1; ; attempt += 1) {
      try {
        await admin.query(`create database "${MULTI_DB}" template "${base.database}"`);
        break;
      } catch (error) {
        if (attempt >= 10 || (error as { code?: string }).code !== '55006') throw error;
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    const db = new pg.Client({ database: MULTI_DB });
    await db.connect();
    try {
      await db.query('alter table payments rename to payments_all');
      for (const [k, name] of wanted.entries()) {
        await db.query(`create table ${name} (like payments_all including all)`);
        await db.query(`insert into ${name} select * from payments_all where id % ${PARTS} = ${k}`);
      }
      await db.query('drop table payments_all');
      await db.query('vacuum analyze');
    } finally {
      await db.end();
    }
    return { database: MULTI_DB, sizeBytes: (await sizeOf(MULTI_DB)) ?? 0, tables: wanted.length + 1 };
  } finally {
    await admin.end();
  }
}
