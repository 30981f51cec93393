import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { withClient } from './pg.js';

const run = promisify(execFile);

export interface DatabaseSnapshot {
  /** pg_dump --schema-only, with the lines that name the database itself removed. */
  readonly schema: string;
  /** schema.table → row count and an order-independent digest of the rows' text. */
  readonly tables: Record<string, { rows: number; digest: string }>;
  /** Large object oid → md5 of its bytes. */
  readonly largeObjects: Record<string, string>;
  /** schema.sequence → last_value and is_called. */
  readonly sequences: Record<string, string>;
}

export async function schemaOnly(database: string, extra: string[] = []): Promise<string> {
  const { stdout } = await run(
    'pg_dump',
    ['--schema-only', '--no-owner', '--no-privileges', ...extra, database],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return stdout
    .split('\n')
    .filter((l) => !/^(--|\\restrict|\\unrestrict)/.test(l))
    .join('\n');
}

/** What a user would compare after a restore: schema, rows and their content, large objects, sequences. */
export async function snapshot(database: string): Promise<DatabaseSnapshot> {
  const schema = await schemaOnly(database);
  return withClient(database, async (c) => {
    const tables: Record<string, { rows: number; digest: string }> = {};
    const list = await c.query<{ schema: string; name: string }>(
      `select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
       order by 1, 2`,
    );
    for (const t of list.rows) {
      const q = `"${t.schema.replace(/"/g, '""')}"."${t.name.replace(/"/g, '""')}"`;
      const r = await c.query<{ rows: string; digest: string | null }>(
        `select count(*) as rows, md5(string_agg(md5(x::text), '' order by md5(x::text))) as digest from ${q} x`,
      );
      const row = r.rows[0];
      tables[`${t.schema}.${t.name}`] = { rows: Number(row?.rows ?? 0), digest: row?.digest ?? '' };
    }
    const los = await c.query<{ oid: string; digest: string }>(
      `select oid::text, md5(lo_get(oid)) as digest from pg_largeobject_metadata order by oid`,
    );
    const largeObjects = Object.fromEntries(los.rows.map((r) => [r.oid, r.digest]));
    const seqs = await c.query<{ schema: string; name: string }>(
      `select schemaname as schema, sequencename as name from pg_sequences order by 1, 2`,
    );
    const sequences: Record<string, string> = {};
    for (const s of seqs.rows) {
      const q = `"${s.schema.replace(/"/g, '""')}"."${s.name.replace(/"/g, '""')}"`;
      const r = await c.query<{ last_value: string; is_called: boolean }>(
        `select last_value, is_called from ${q}`,
      );
      sequences[`${s.schema}.${s.name}`] = `${r.rows[0]?.last_value}/${r.rows[0]?.is_called}`;
    }
    return { schema, tables, largeObjects, sequences };
  });
}
