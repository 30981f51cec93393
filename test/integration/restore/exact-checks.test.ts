import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import { RestoreCheckFailedError } from '../../../lib/domain/errors.js';
import type { Codec, Manifest } from '../../../lib/domain/manifest.js';
import type { RestoreReport } from '../../../lib/domain/verify-report.js';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { createDatabase, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import { awkwardDatabase, dump, restoreDeps } from './fixture.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-exact-'));
const store = new FileStore(join(work, 'nas'));
const created: string[] = [];
let awkward: string;
let liar: string;
const backups = new Map<string, Manifest>();

/**
 * A database whose planner statistics say nothing true: autovacuum off, an estimate set by hand
 * on a table never analyzed, a table bulk-loaded after its last analyze, and one analyzed (fresh)
 * whose estimate was then set far above what it holds.
 */
const lyingStatistics = `
  create table never_analyzed (id int, body text) with (autovacuum_enabled = false);
  insert into never_analyzed select g, repeat('x', 50) from generate_series(1, 5000) g;
  update pg_class set reltuples = 12 where relname = 'never_analyzed';
  create table bulk_loaded (id int) with (autovacuum_enabled = false);
  insert into bulk_loaded select generate_series(1, 10);
  analyze bulk_loaded;
  insert into bulk_loaded select generate_series(11, 20000);
  create table emptied (id int) with (autovacuum_enabled = false);
  analyze emptied;
  update pg_class set reltuples = 0 where relname = 'emptied';
  create table overestimated (id int) with (autovacuum_enabled = false);`;

function verify(
  database: string,
  options: {
    jobs?: number;
    depth?: string;
    codec?: Codec;
    beforeChecks?: (db: string) => Promise<void>;
  } = {},
): Promise<RestoreReport> {
  const manifest = backups.get(`${database}:${options.codec ?? 'zstd'}`);
  if (!manifest) throw new Error(`no ${options.codec} backup of ${database}`);
  return runRestore(
    parseRestoreRequest({
      mode: 'verify',
      database,
      backup: manifest.id,
      ...(options.jobs ? { jobs: options.jobs } : {}),
      ...(options.depth ? { depth: options.depth } : {}),
    }),
    restoreDeps(store, {
      policy: { depth: 'rows' },
      ...(options.beforeChecks ? { beforeChecks: options.beforeChecks } : {}),
    }),
  );
}

async function failure(report: Promise<RestoreReport>): Promise<RestoreCheckFailedError> {
  const error = await report.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RestoreCheckFailedError);
  return error as RestoreCheckFailedError;
}

beforeAll(async () => {
  awkward = await awkwardDatabase('exact_awk');
  liar = uniqueDbName('exact_liar');
  created.push(awkward, liar);
  await createDatabase(liar, lyingStatistics);
  // Filled, its counts flushed to the statistics, then analyzed: fresh statistics.
  await withClient(liar, async (c) => {
    await c.query('insert into overestimated select generate_series(1, 300)');
    await c.query('select pg_stat_force_next_flush()');
    await c.query('analyze overestimated');
    await c.query(`update pg_class set reltuples = 90000 where relname = 'overestimated'`);
    const stats = await c.query(
      `select n_mod_since_analyze::int as n from pg_stat_user_tables where relname = 'overestimated'`,
    );
    expect(stats.rows).toEqual([{ n: 0 }]);
  });
  for (const codec of ['zstd', 'gzip', 'none'] as const) {
    backups.set(`${awkward}:${codec}`, await dump(store, awkward, { codec }));
  }
  backups.set(`${liar}:zstd`, await dump(store, liar));
});

afterAll(async () => {
  for (const name of created) await dropDatabase(name);
  rmSync(work, { recursive: true, force: true });
});

describe('the row check: every table holds exactly the rows of the backup', () => {
  it('passes the awkward fixture streamed and spooled, each table with the rows counted in its archive', async () => {
    for (const jobs of [1, 2]) {
      const report = await verify(awkward, { jobs });
      expect(report.passed).toBe(true);
      expect(report.checks.find((c) => c.kind === 'rows')).toMatchObject({
        name: "every table holds exactly the backup's rows",
        value: "5 of 5 tables hold exactly the backup's rows",
      });
      expect(report.tables).toContainEqual(
        expect.objectContaining({ schema: 'core', name: 'transactions', rows: 3000, backupRows: 3000 }),
      );
      expect(report.depth).toBe('rows');
    }
  });

  it('passes a database whose statistics lie, warning only where fresh statistics claimed far more', async () => {
    const report = await verify(liar);
    expect(report.passed).toBe(true);
    expect(report.tables.map((t) => [t.name, t.rows, t.backupRows])).toEqual([
      ['bulk_loaded', 20000, 20000],
      ['emptied', 0, 0],
      ['never_analyzed', 5000, 5000],
      ['overestimated', 300, 300],
    ]);
    expect(report.warnings).toEqual([
      'public.overestimated: the backup holds 300 rows, fresh statistics of the source estimated 90000 when it was taken',
    ]);
  });

  it('fails when one row is missing from the restored database, naming the table and both counts', async () => {
    const error = await failure(
      verify(awkward, {
        beforeChecks: (db) =>
          withClient(db, (c) => c.query('delete from auth.users where id = 17').then(() => {})),
      }),
    );
    expect(error.message).toContain('auth.users: 49 rows restored, 50 in the backup');
    expect(error.report?.checks.find((c) => c.kind === 'rows')?.passed).toBe(false);
  });

  it('fails on a missing row of one partition, naming the partition', async () => {
    const error = await failure(
      verify(awkward, {
        jobs: 2,
        beforeChecks: (db) =>
          withClient(db, (c) =>
            c
              .query(`delete from core.transactions where id = (select min(id) from core.transactions_2026)`)
              .then(() => {}),
          ),
      }),
    );
    expect(error.message).toContain('core.transactions_2026: 1301 rows restored, 1302 in the backup');
    expect(error.message).not.toContain('core.transactions:');
  });
});

describe('a backup whose manifest predates exact counts', () => {
  it('verifies with the rows counted in its archive, at content depth too, and says what it could not match', async () => {
    const old = uniqueDbName('exact_old');
    created.push(old);
    await createDatabase(
      old,
      'create table t (id int, at timestamptz); insert into t select g, now() from generate_series(1, 40) g;',
    );
    const manifest = await dump(store, old);
    const file = join(work, 'nas', keysFor(store.prefix, manifest.id).manifest);
    const { dumpSettings: _settings, ...older } = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    writeFileSync(
      file,
      JSON.stringify({ ...older, tables: older.tables.map(({ statsFresh: _fresh, ...t }) => t) }),
    );
    backups.set(`${old}:zstd`, manifest);
    const report = await verify(old, { depth: 'content' });
    expect(report.passed).toBe(true);
    expect(report.checks.filter((c) => c.kind === 'rows' || c.kind === 'content')).toEqual([
      expect.objectContaining({
        name: "every table holds exactly the backup's rows",
        expected: "each table's row count as counted in the archive's data",
      }),
      expect.objectContaining({ kind: 'content', passed: true }),
    ]);
    expect(report.warnings).toEqual([
      "the manifest does not record the dump's time zone and output settings: tables were read back in the restoring server's",
    ]);
  });
});

describe('the content check (--depth content)', () => {
  it('passes the awkward fixture from zstd, gzip and uncompressed backups, streamed and spooled', async () => {
    for (const codec of ['zstd', 'gzip', 'none'] as const) {
      for (const jobs of [1, 2]) {
        const report = await verify(awkward, { codec, jobs, depth: 'content' });
        expect(report.passed).toBe(true);
        expect(report.depth).toBe('content');
        expect(report.checks.find((c) => c.kind === 'content')).toMatchObject({
          passed: true,
          value: "5 of 5 tables hold exactly the backup's data",
        });
      }
    }
  });

  it('fails when one value in the restored copy differs, naming the table, although every count is right', async () => {
    const error = await failure(
      verify(awkward, {
        depth: 'content',
        beforeChecks: (db) =>
          withClient(db, (c) =>
            c
              .query(
                `update "Reporting Ünïcode"."Daily Totals (EUR)" set "Notes with spaces" = 'día 02 ' where "Day" = '2026-01-02'`,
              )
              .then(() => {}),
          ),
      }),
    );
    expect(error.message).toContain(
      `Reporting Ünïcode.Daily Totals (EUR): its rows differ from the backup's`,
    );
    expect(error.report?.checks.find((c) => c.kind === 'rows')?.passed).toBe(true);
  });

  it('is not run unless asked for', async () => {
    const report = await verify(awkward);
    expect(report.checks.map((c) => c.kind)).not.toContain('content');
  });
});
