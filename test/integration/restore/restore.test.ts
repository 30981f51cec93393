import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import { RestoreCheckFailedError, RestoreFailedError } from '../../../lib/domain/errors.js';
import type { Manifest } from '../../../lib/domain/manifest.js';
import { scratchDatabaseName, scratchSuffix } from '../../../lib/domain/restore-checks.js';
import type { RestoreReport } from '../../../lib/domain/verify-report.js';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { type DatabaseSnapshot, schemaOnly, snapshot } from '../../support/compare.js';
import { createDatabase, databaseExists, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import { awkwardDatabase, databasesLike, dump, restoreDeps, schemasOf } from './fixture.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-restore-'));
const store = new FileStore(join(work, 'nas'));
const created: string[] = [];
let source: string;
let manifest: Manifest;
let sourceSnapshot: DatabaseSnapshot;

function target(label: string): string {
  const name = uniqueDbName(label);
  created.push(name);
  return name;
}

function statements(schemaDump: string): string[] {
  return schemaDump
    .split(/\n{2,}/)
    .map((s) => s.trim())
    .filter(Boolean)
    .sort();
}

beforeAll(async () => {
  source = await awkwardDatabase('restore_src');
  created.push(source);
  // Statistics as a production database has them, so row counts are compared with real estimates.
  await withClient(source, (c) => c.query('analyze'));
  manifest = await dump(store, source);
  sourceSnapshot = await snapshot(source);
});

afterAll(async () => {
  for (const db of created) await dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

describe('restore from the file store', () => {
  it('restores the awkward fixture to a database equal to the source', async () => {
    const into = target('full');
    const report = await runRestore(
      parseRestoreRequest({ database: source, backup: 'latest', targetDatabase: into }),
      restoreDeps(store),
    );
    const after = await snapshot(into);
    expect(after.schema).toBe(sourceSnapshot.schema);
    expect(after.tables).toEqual(sourceSnapshot.tables);
    expect(after.largeObjects).toEqual(sourceSnapshot.largeObjects);
    expect(after.sequences).toEqual(sourceSnapshot.sequences);

    expect(report).toMatchObject({
      backupId: manifest.id,
      mode: 'restore',
      target: into,
      passed: true,
      jobs: 1,
      spooled: false,
      bytesFetched: manifest.sizeBytes,
      warnings: [],
    });
    expect(report.tables).toContainEqual(
      expect.objectContaining({ schema: 'core', name: 'transactions', rows: 3000 }),
    );
    for (const t of manifest.tables.filter((x) => x.kind === 'table')) {
      const rows = sourceSnapshot.tables[`${t.schema}.${t.name}`]?.rows;
      expect(report.tables).toContainEqual({
        schema: t.schema,
        name: t.name,
        kind: 'table',
        rows,
        backupRows: rows,
        estimate: t.rowEstimate,
      });
    }
    expect(report.checks.map((c) => [c.kind, c.passed])).toEqual([
      ['connect', true],
      ['tables', true],
      ['owners', true],
      ['grants', true],
      ['rows', true],
      ['content', true],
    ]);
    // The source's roles are on this server: owners and privileges come back as they were.
    expect(report.ownership).toMatchObject({ owners: 'kept', privileges: 'kept', missingRoles: [] });
    expect(report.recoverySeconds).toBeGreaterThanOrEqual(report.timings.restoreSeconds);
    // Restore mode stores no report: only verify speaks for the backup.
    expect(await store.head(keysFor(store.prefix, manifest.id).verify)).toBeUndefined();
  });

  it('restores only the objects of the schemas asked for', async () => {
    const into = target('schemas');
    const report = await runRestore(
      parseRestoreRequest({ database: source, targetDatabase: into, schemas: ['core', 'auth'] }),
      restoreDeps(store),
    );
    expect(await schemasOf(into)).toEqual(['auth', 'core', 'public']);
    const only = ['--schema', 'core', '--schema', 'auth'];
    // The same statements; pg_dump may order independent ones differently as object ids differ.
    expect(statements(await schemaOnly(into, only))).toEqual(statements(await schemaOnly(source, only)));
    const after = await snapshot(into);
    const wanted = Object.fromEntries(
      Object.entries(sourceSnapshot.tables).filter(([k]) => k.startsWith('core.') || k.startsWith('auth.')),
    );
    expect(after.tables).toEqual(wanted);
    // Large objects belong to no schema, so a restore by schema leaves them out.
    expect(after.largeObjects).toEqual({});
    expect(report.schemas).toEqual(['core', 'auth']);
    expect(report.tables.map((t) => t.schema).sort()).not.toContain('Reporting Ünïcode');
    expect(report.passed).toBe(true);
  });

  it('restores with two jobs from a spool on local disk, and removes the spool', async () => {
    const spoolDir = mkdtempSync(join(work, 'spool-'));
    const into = target('jobs');
    const report = await runRestore(
      parseRestoreRequest({ database: source, targetDatabase: into, jobs: 2 }),
      restoreDeps(store, { policy: { spoolDir, spoolHeadroom: 0 } }),
    );
    expect(report).toMatchObject({ jobs: 2, spooled: true, passed: true, bytesFetched: manifest.sizeBytes });
    expect((await snapshot(into)).tables).toEqual(sourceSnapshot.tables);
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('streams with one job, and says so, when the disk has no room to spool', async () => {
    const spoolDir = mkdtempSync(join(work, 'spool-'));
    const into = target('noroom');
    const report = await runRestore(
      parseRestoreRequest({ database: source, targetDatabase: into, jobs: 2 }),
      restoreDeps(store, { policy: { spoolDir, spoolHeadroom: 1e15 } }),
    );
    expect(report).toMatchObject({ jobs: 1, spooled: false, passed: true });
    expect(report.warnings).toEqual([
      expect.stringMatching(/^restored with one job from the stream instead of 2/),
    ]);
    expect((await snapshot(into)).tables).toEqual(sourceSnapshot.tables);
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('replaces an existing target only when asked, and then holds the backup', async () => {
    const into = target('replace');
    await withClient('postgres', (c) => c.query(`create database "${into}"`));
    await withClient(into, (c) => c.query('create table stale (x int); insert into stale values (1)'));
    await expect(
      runRestore(parseRestoreRequest({ database: source, targetDatabase: into }), restoreDeps(store)),
    ).rejects.toThrow(/already exists/);
    expect(await schemasOf(into)).toEqual(['public']);

    const report = await runRestore(
      parseRestoreRequest({ database: source, targetDatabase: into, replace: true }),
      restoreDeps(store),
    );
    expect(report).toMatchObject({ target: into, replaced: true, passed: true });
    expect((await snapshot(into)).tables).toEqual(sourceSnapshot.tables);
    expect(await databasesLike('pgbp_replace_')).toEqual([]);
  });

  it('keeps the database being replaced when the new one fails its checks', async () => {
    const into = target('keep');
    await withClient('postgres', (c) => c.query(`create database "${into}"`));
    await withClient(into, (c) => c.query('create table precious (x int)'));
    const failing = {
      name: 'impossible',
      sql: 'select count(*) from core.accounts',
      expect: { atLeast: 1e9 },
    };
    await expect(
      runRestore(
        parseRestoreRequest({ database: source, targetDatabase: into, replace: true }),
        restoreDeps(store, { assertions: [failing] }),
      ),
    ).rejects.toThrow(/"impossible"/);
    const tables = await withClient(into, (c) =>
      c.query(`select relname from pg_class where relname = 'precious'`),
    );
    expect(tables.rowCount).toBe(1);
    expect(await databasesLike('pgbp_replace_')).toEqual([]);
  });
});

describe('a restore by schema that needs only the start of the archive', () => {
  it('succeeds although pg_restore stops reading before the end of the stream', async () => {
    // Data is archived schema by schema: everything of z_last comes after a_first, and pg_restore
    // has no reason to read it, so zstd is cut off mid-stream by the pg_restore that is done.
    const db = uniqueDbName('early');
    created.push(db);
    await createDatabase(
      db,
      `create schema a_first; create table a_first.t as select g as id from generate_series(1, 100) g;
       create schema z_last; create table z_last.filler as
         select g as id, repeat('pgbp restore ', 400) as body from generate_series(1, 4000) g;`,
    );
    const early = await dump(store, db);
    const into = target('early_into');
    const report = await runRestore(
      parseRestoreRequest({ database: db, backup: early.id, targetDatabase: into, schemas: ['a_first'] }),
      restoreDeps(store),
    );
    expect(report).toMatchObject({ passed: true, bytesFetched: early.sizeBytes });
    expect(report.tables).toEqual([
      { schema: 'a_first', name: 't', kind: 'table', rows: 100, backupRows: 100, estimate: -1 },
    ]);
    expect(await schemasOf(into)).toEqual(['a_first', 'public']);
  });
});

describe('a restore that does not succeed', () => {
  it("fails with RestoreFailedError in pg_restore's words and drops the target it created", async () => {
    // The materialized view in this schema reads core.transactions, which is not restored.
    const into = target('partial');
    const error = await runRestore(
      parseRestoreRequest({ database: source, targetDatabase: into, schemas: ['Reporting Ünïcode'] }),
      restoreDeps(store),
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(RestoreFailedError);
    expect(error?.message).toMatch(/pg_restore exited with code 1: .*core\.transactions/);
    expect(await databaseExists(into)).toBe(false);
  });

  it('keeps a new target whose checks failed, holding what the backup holds, and says so', async () => {
    const into = target('kept');
    const failing = {
      name: 'impossible',
      sql: 'select count(*) from core.accounts',
      expect: { atLeast: 1e9 },
    };
    const error = await runRestore(
      parseRestoreRequest({ database: source, targetDatabase: into }),
      restoreDeps(store, { assertions: [failing] }),
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(RestoreCheckFailedError);
    expect(error?.message).toContain(`${into} is kept for inspection`);
    expect((await snapshot(into)).tables).toEqual(sourceSnapshot.tables);
  });
});

describe('verify from the file store', () => {
  const assertions = [
    {
      name: 'transactions restored',
      sql: 'select count(*) from core.transactions',
      expect: { atLeast: 3000 },
    },
    {
      name: 'every account has a holder',
      sql: 'select bool_and(holder is not null) from core.accounts',
      expect: { isTrue: true as const },
    },
  ];

  async function storedReport(): Promise<RestoreReport> {
    return JSON.parse((await store.getBytes(keysFor(store.prefix, manifest.id).verify)).toString('utf8'));
  }

  it('passes a good backup, stores the report beside it and drops the scratch database', async () => {
    const phases: string[] = [];
    const report = await runRestore(
      parseRestoreRequest({ mode: 'verify', database: source, backup: manifest.id }),
      restoreDeps(store, { assertions, onPhase: (p) => phases.push(p) }),
    );
    expect(report).toMatchObject({ mode: 'verify', passed: true, backupId: manifest.id });
    expect(report.target).toMatch(new RegExp(`^pgbp_verify_${source}_[0-9a-z]{7}[0-9a-f]{8}$`));
    expect(await databaseExists(report.target)).toBe(false);
    expect(report.checks.filter((c) => c.kind === 'assertion')).toEqual([
      expect.objectContaining({
        name: 'transactions restored',
        passed: true,
        value: '3000',
        expected: 'at least 3000',
      }),
      expect.objectContaining({ name: 'every account has a holder', passed: true, value: true }),
    ]);
    expect(await storedReport()).toEqual(report);
    expect(phases).toEqual(['find', 'restore', 'checks', 'cleanup']);
  });

  it('drops the scratch database a killed verify of this database left a day ago, and no other', async () => {
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3600 * 1000);
    const leftover = scratchDatabaseName(source, scratchSuffix(hoursAgo(30), 'deadbeef'));
    const recent = scratchDatabaseName(source, scratchSuffix(hoursAgo(2), 'deadbeef'));
    const another = scratchDatabaseName(`${source}_x`, scratchSuffix(hoursAgo(30), 'deadbeef'));
    created.push(leftover, recent, another);
    await createDatabase(another);
    await createDatabase(leftover);
    await createDatabase(recent);
    const report = await runRestore(
      parseRestoreRequest({ mode: 'verify', database: source, backup: manifest.id }),
      restoreDeps(store, { assertions }),
    );
    expect(report.passed).toBe(true);
    expect(await databaseExists(leftover)).toBe(false);
    expect(await databaseExists(recent)).toBe(true);
    expect(await databaseExists(another)).toBe(true);
    await dropDatabase(recent);
    await dropDatabase(another);
    expect(report.warnings).toContain(`dropped ${leftover}, a scratch database a killed verify left behind`);
  });

  it('fails on a failing assertion with its name, query and value, reports it, and drops the scratch database', async () => {
    const failing = {
      name: 'enough settled payments',
      sql: 'select count(*) from core.settled',
      expect: { atLeast: 5000 },
    };
    const error = await runRestore(
      parseRestoreRequest({ mode: 'verify', database: source, backup: manifest.id }),
      restoreDeps(store, { assertions: [...assertions, failing] }),
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(RestoreCheckFailedError);
    expect(error?.name).toBe('RestoreCheckFailedError');
    expect(error?.message).toContain(
      '"enough settled payments" (select count(*) from core.settled) saw "1000"',
    );
    const report = await storedReport();
    expect(report.passed).toBe(false);
    expect(report.checks.find((c) => c.name === 'enough settled payments')).toMatchObject({
      passed: false,
      value: '1000',
    });
    expect(await databaseExists(report.target)).toBe(false);
    expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
  });
});
