import pg from 'pg';

/**
 * The benchmark database: payment-like rows (ids, uuids, amounts, timestamps, short text,
 * jsonb) that compress about as well as real ones, i.e. not very. Made once and reused while
 * its size is right; BENCH_SCALE_MB sets the size (default 1000 MB).
 */
export const BENCH_DB = 'pgbp_bench';

// Benchmarks follow libpq conventions like everything else, with the local server as default.
process.env.PGHOST ??= '127.0.0.1';
process.env.PGPORT ??= '5432';
process.env.PGUSER ??= 'postgres';

/** Bytes on disk per row, measured, to size each table. */
const PAYMENT_ROW_BYTES = 205;
const LEDGER_ROW_BYTES = 115;
const AUDIT_ROW_BYTES = 160;

/**
 * Bumped when the schema changes, so a database of the old shape is made again. Shape 2 spreads
 * the data over the tables a payments database has (payments, ledger entries, audit events)
 * instead of one table: a restore can only run tables in parallel, and real databases have
 * several large ones.
 */
const SHAPE = 'pgbp bench shape 2';

async function sizeOf(client: pg.Client, database: string): Promise<number | undefined> {
  const r = await client.query<{ size: string }>(
    'select pg_database_size(datname)::text as size from pg_database where datname = $1',
    [database],
  );
  return r.rows[0] ? Number(r.rows[0].size) : undefined;
}

export async function ensureBenchDatabase(
  scaleMb = Number(process.env.BENCH_SCALE_MB ?? 1000),
  database = BENCH_DB,
): Promise<{ database: string; sizeBytes: number }> {
  const admin = new pg.Client({ database: 'postgres' });
  await admin.connect();
  try {
    const existing = await sizeOf(admin, database);
    const wanted = scaleMb * 1e6;
    const shape = await admin.query<{ shape: string | null }>(
      `select shobj_description(oid, 'pg_database') as shape from pg_database where datname = $1`,
      [database],
    );
    if (
      existing !== undefined &&
      shape.rows[0]?.shape === SHAPE &&
      Math.abs(existing - wanted) / wanted < 0.15
    ) {
      return { database, sizeBytes: existing };
    }
    await admin.query(`drop database if exists "${database}" with (force)`);
    await admin.query(`create database "${database}"`);
    const db = new pg.Client({ database });
    await db.connect();
    try {
      const rows = Math.round((wanted * 0.5) / PAYMENT_ROW_BYTES);
      const ledgerRows = Math.round((wanted * 0.32) / LEDGER_ROW_BYTES);
      const auditRows = Math.round((wanted * 0.15) / AUDIT_ROW_BYTES);
      const batches = 8;
      await db.query(`create table payments (
        id bigint primary key, ref uuid not null, account_id int not null, amount numeric(14, 2) not null,
        currency char(3) not null, status text not null, booked_at timestamptz not null,
        memo text, meta jsonb not null)`);
      await db.query('create table accounts (id int primary key, holder text not null, iban text not null)');
      await db.query(`insert into accounts select g, 'Holder ' || md5(g::text), 'DE' || lpad((g * 7919)::text, 20, '0')
        from generate_series(1, 50000) g`);
      for (let b = 0; b < batches; b += 1) {
        const from = Math.floor((rows * b) / batches) + 1;
        const to = Math.floor((rows * (b + 1)) / batches);
        await db.query(
          `insert into payments
           select g, gen_random_uuid(), 1 + (random() * 49999)::int, round((random() * 25000)::numeric, 2),
                  (array['EUR','USD','TRY','GBP','CHF'])[1 + (random() * 4)::int],
                  (array['pending','settled','settled','settled','failed'])[1 + (random() * 4)::int],
                  timestamptz '2025-01-01' + random() * interval '700 days',
                  'invoice ' || (random() * 1e6)::int || ' ' || substr(md5(random()::text), 1, 12 + (random() * 20)::int),
                  jsonb_build_object('ip', (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int || '.1',
                                     'channel', (array['web','app','api'])[1 + (random() * 2)::int],
                                     'risk', round(random()::numeric, 3))
           from generate_series(${from}, ${to}) g`,
        );
      }
      await db.query(`create table ledger_entries (
        id bigint primary key, payment_id bigint not null, account_id int not null, direction char(1) not null,
        amount numeric(14, 2) not null, balance_after numeric(16, 2) not null, entry_at timestamptz not null)`);
      await db.query(`create table audit_events (
        id bigint primary key, at timestamptz not null, actor text not null, action text not null, detail jsonb not null)`);
      for (let b = 0; b < batches; b += 1) {
        const from = Math.floor((ledgerRows * b) / batches) + 1;
        const to = Math.floor((ledgerRows * (b + 1)) / batches);
        await db.query(
          `insert into ledger_entries
           select g, 1 + (random() * ${rows - 1})::bigint, 1 + (random() * 49999)::int,
                  (array['D','C'])[1 + (g % 2)], round((random() * 25000)::numeric, 2),
                  round((random() * 1e7)::numeric, 2), timestamptz '2025-01-01' + random() * interval '700 days'
           from generate_series(${from}, ${to}) g`,
        );
      }
      for (let b = 0; b < batches; b += 1) {
        const from = Math.floor((auditRows * b) / batches) + 1;
        const to = Math.floor((auditRows * (b + 1)) / batches);
        await db.query(
          `insert into audit_events
           select g, timestamptz '2025-01-01' + random() * interval '700 days',
                  'user-' || (random() * 5000)::int,
                  (array['login','payment.create','payment.approve','limit.change','export'])[1 + (random() * 4)::int],
                  jsonb_build_object('session', substr(md5(random()::text), 1, 16),
                                     'ua', (array['ios','android','web'])[1 + (random() * 2)::int],
                                     'ms', (random() * 900)::int)
           from generate_series(${from}, ${to}) g`,
        );
      }
      await db.query('analyze');
      await admin.query(`comment on database "${database}" is '${SHAPE}'`);
    } finally {
      await db.end();
    }
    return { database, sizeBytes: (await sizeOf(admin, database)) ?? 0 };
  } finally {
    await admin.end();
  }
}
