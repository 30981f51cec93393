import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ArchiveContents, ArchiveCounter, copyColumns } from '../../../lib/postgres/archive-counts.js';
import { digestRestoredTable, type OutputSettings } from '../../../lib/postgres/copy-out.js';
import { createDatabase, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import { awkwardDatabase, connection } from '../restore/fixture.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'pgbp-archive-counts-'));
const created: string[] = [];

/** pg_dump as the dump runs it (custom format, to a pipe), with `env` over the test's. */
async function pgDump(database: string, compress: number, env: NodeJS.ProcessEnv = {}): Promise<Buffer> {
  const file = join(work, `${database}-z${compress}.dump`);
  await run('bash', ['-o', 'pipefail', '-c', `pg_dump -Fc -Z${compress} '${database}' | cat > '${file}'`], {
    env: { ...process.env, ...env },
  });
  return readFileSync(file);
}

/** Reads an archive in chunks of `size` bytes, as a stream cut anywhere would hand it over. */
async function contentsOf(archive: Buffer, size: number): Promise<ArchiveContents> {
  const counter = new ArchiveCounter({ digest: true });
  for (let i = 0; i < archive.length; i += size) counter.push(archive.subarray(i, i + size));
  const counts = await counter.finish();
  if (counts.kind !== 'counted') throw new Error(counts.reason);
  return counts.contents;
}

async function leafCounts(database: string): Promise<Map<string, number>> {
  return withClient(database, async (c) => {
    const tables = await c.query<{ key: string; q: string }>(
      `select n.nspname || '.' || c.relname as key, format('%I.%I', n.nspname, c.relname) as q
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')`,
    );
    const counts = new Map<string, number>();
    for (const t of tables.rows) {
      const r = await c.query<{ n: string }>(`select count(*) as n from only ${t.q}`);
      counts.set(t.key, Number(r.rows[0]?.n));
    }
    return counts;
  });
}

function digestOf(
  database: string,
  contents: ArchiveContents,
  key: string,
  settings: OutputSettings,
): Promise<{ rows: number; digest: string }> {
  const t = contents.tables.get(key);
  if (!t) throw new Error(`${key} is not in the archive`);
  return digestRestoredTable({
    connection: { ...connection, database },
    env: process.env,
    schema: t.schema,
    name: t.name,
    columns: t.columns,
    settings,
  });
}

let awkward: string;

beforeAll(async () => {
  awkward = await awkwardDatabase('counts_src');
  created.push(awkward);
});

afterAll(async () => {
  for (const name of created) await dropDatabase(name);
  rmSync(work, { recursive: true, force: true });
});

describe('counting rows in a custom archive', () => {
  it("counts each table's rows exactly, uncompressed or zlib inside the archive, however the bytes are cut", async () => {
    const expected = await leafCounts(awkward);
    for (const compress of [0, 6]) {
      const archive = await pgDump(awkward, compress);
      const whole = await contentsOf(archive, archive.length);
      for (const size of [3, 7, 4096, archive.length]) {
        const contents = await contentsOf(archive, size);
        const counts = new Map([...contents.tables].map(([k, t]) => [k, t.rows]));
        expect(counts).toEqual(expected);
        expect(contents.encoding).toBe('UTF8');
        for (const [key, t] of contents.tables) expect(t.digest).toBe(whole.tables.get(key)?.digest);
        const counter = new ArchiveCounter({ digest: false });
        for (let i = 0; i < archive.length; i += size) counter.push(archive.subarray(i, i + size));
        const countsOnly = await counter.finish();
        if (countsOnly.kind !== 'counted') throw new Error(countsOnly.reason);
        expect(new Map([...countsOnly.contents.tables].map(([k, t]) => [k, t.rows]))).toEqual(expected);
      }
    }
  });

  it('digests the same data the same way whether or not pg_dump compressed it', async () => {
    const plain = await contentsOf(await pgDump(awkward, 0), 65536);
    const zlib = await contentsOf(await pgDump(awkward, 6), 65536);
    for (const [key, t] of plain.tables) expect(zlib.tables.get(key)?.digest).toBe(t.digest);
  });

  it("reads pg_dump's column list, quoted as it wrote it", () => {
    expect(
      copyColumns('COPY "Reporting Ünïcode"."Daily Totals (EUR)" ("Day", "Total €") FROM stdin;\n'),
    ).toBe('("Day", "Total €")');
    expect(copyColumns('COPY public.empty  FROM stdin;\n')).toBe('');
  });

  it('says why it cannot count an archive it does not know, and never throws', async () => {
    const counter = new ArchiveCounter({ digest: false });
    counter.push(Buffer.from('PGDMP but not really an archive, just text'));
    expect(await counter.finish()).toMatchObject({ kind: 'unsupported' });
  });
});

describe('reading a restored table back as pg_dump read it', () => {
  // Like the benchmark's payments table (uuids, numeric amounts, timestamps with time zone,
  // jsonb), with what trips a naive read-back: a generated column pg_dump leaves out, floats,
  // intervals, bytea, money, and a dump taken in a time zone the restoring session is not in.
  const paymentsSql = `
    create table payments (
      id bigint primary key, ref uuid not null, account_id int not null, amount numeric(14, 2) not null,
      currency char(3) not null, status text not null, booked_at timestamptz not null,
      memo text, meta jsonb not null,
      amount_cents bigint generated always as ((amount * 100)::bigint) stored,
      rate float8 not null, hold interval not null, receipt bytea, fee money not null);
    insert into payments (id, ref, account_id, amount, currency, status, booked_at, memo, meta, rate, hold, receipt, fee)
    select g, gen_random_uuid(), 1 + (random() * 49999)::int, round((random() * 25000)::numeric, 2),
           (array['EUR','USD','TRY','GBP','CHF'])[1 + (random() * 4)::int],
           (array['pending','settled','settled','settled','failed'])[1 + (random() * 4)::int],
           timestamptz '2025-01-01' + random() * interval '700 days',
           'invoice ' || (random() * 1e6)::int || E'\\t' || substr(md5(random()::text), 1, 12 + (random() * 20)::int),
           jsonb_build_object('ip', (random() * 255)::int || '.1', 'risk', round(random()::numeric, 3)),
           random() / 3, make_interval(days => (random() * 40)::int, secs => random() * 1000),
           decode(md5(g::text), 'hex'), (random() * 100)::numeric::money
    from generate_series(1, 20000) g;
    analyze payments;`;
  const dumpZone = 'America/St_Johns';
  let source: string;
  let restored: string;
  let contents: ArchiveContents;
  const settings = (timeZone: string): OutputSettings => ({ encoding: 'UTF8', timeZone, byteaOutput: 'hex' });

  beforeAll(async () => {
    source = uniqueDbName('counts_pay');
    restored = uniqueDbName('counts_pay_r');
    created.push(source, restored);
    await createDatabase(source, paymentsSql);
    const archive = await pgDump(source, 0, { PGTZ: dumpZone });
    await createDatabase(restored);
    await run('pg_restore', ['--no-owner', '-d', restored, join(work, `${source}-z0.dump`)]);
    contents = await contentsOf(archive, 1 << 20);
  });

  it('gives the digest of the archive for a faithfully restored table, in the dump time zone', async () => {
    const back = await digestOf(restored, contents, 'public.payments', settings(dumpZone));
    expect(back.rows).toBe(20000);
    expect(back.digest).toBe(contents.tables.get('public.payments')?.digest);
  });

  it('gives the same digest when the restored rows come back in another order', async () => {
    // Updating every other row moves it to the end of the heap: same data, another scan order.
    await withClient(restored, (c) => c.query('update payments set memo = memo where id % 2 = 0'));
    const back = await digestOf(restored, contents, 'public.payments', settings(dumpZone));
    expect(back.digest).toBe(contents.tables.get('public.payments')?.digest);
  });

  it('differs when the session is not in the time zone the dump was taken in', async () => {
    const back = await digestOf(restored, contents, 'public.payments', settings('UTC'));
    expect(back.digest).not.toBe(contents.tables.get('public.payments')?.digest);
  });

  it('differs when one value in one row differs', async () => {
    await withClient(restored, (c) => c.query('update payments set amount = amount + 0.01 where id = 777'));
    const back = await digestOf(restored, contents, 'public.payments', settings(dumpZone));
    expect(back.rows).toBe(20000);
    expect(back.digest).not.toBe(contents.tables.get('public.payments')?.digest);
  });
});
