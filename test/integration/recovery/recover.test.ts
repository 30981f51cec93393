import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBaseBackup } from '../../../lib/backup/base-backup.js';
import type { BaseManifest, RecoveryTarget } from '../../../lib/domain/base-backup.js';
import { parseLsn } from '../../../lib/domain/wal-names.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { recover } from '../../../lib/recovery/recover.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { freePort } from '../../support/ports.js';
import {
  pgBin,
  postgresDir,
  type ScratchCluster,
  scratchRoot,
  startCluster,
} from '../../support/scratch-cluster.js';
import {
  layoutArchiveCommand,
  layoutRestoreCommand,
  switchAndWaitArchived,
} from '../../support/wal-archive.js';

const CLUSTER = 'main';
const DIGEST =
  "select count(*) || ':' || coalesce(md5(string_agg(e::text, ',' order by id)), '') from events e";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the source looked like after each committed row: its xid, a time and LSN just after, the digest. */
interface Point {
  readonly id: number;
  readonly xid: string;
  readonly after: Date;
  readonly lsn: string;
  readonly digest: string;
}

describe('pgbp recover', () => {
  let root: string;
  let source: ScratchCluster;
  let storeDir: string;
  let store: FileStore;
  let base: BaseManifest;
  const points: Point[] = [];
  const recovered: string[] = [];

  const connection = () => ({ host: '127.0.0.1', port: 1, user: 'postgres', database: 'postgres' });

  async function recoverTo(target: RecoveryTarget, options: { archive?: boolean; storeOf?: FileStore } = {}) {
    const pgdata = join(root, `recovered-${recovered.length}`);
    recovered.push(pgdata);
    const port = await freePort();
    const report = await recover(
      {
        cluster: CLUSTER,
        store: options.storeOf ?? store,
        pgdata,
        target,
        restoreCommand: layoutRestoreCommand(root, storeDir, CLUSTER),
        settings: options.archive ? {} : { archive_mode: 'off' },
        start: {
          port,
          connection: connection(),
          timeoutMs: 120_000,
          assertions: [
            {
              database: 'postgres',
              assertions: [
                { name: 'events readable', sql: 'select count(*) from events', expect: { atLeast: 0 } },
              ],
            },
          ],
        },
      },
      { env: process.env, logger: silentLogger },
    );
    const sql = (q: string) =>
      execFileSync(
        'psql',
        ['-X', '-Atq', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', q],
        {
          encoding: 'utf8',
        },
      ).trim();
    return { report, pgdata, port, sql };
  }

  function stopServer(pgdata: string) {
    spawnSync(
      'runuser',
      ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', pgdata, '-w', '-m', 'fast', 'stop'],
      {
        stdio: 'ignore',
      },
    );
  }

  beforeAll(async () => {
    root = scratchRoot();
    storeDir = postgresDir(root, 'store');
    store = new FileStore(storeDir);
    source = await startCluster({
      root,
      walSegmentMb: 1,
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: layoutArchiveCommand(root, storeDir, CLUSTER),
      },
    });
    source.sql(
      'create table events (id int primary key, note text, at timestamptz not null default clock_timestamp())',
    );
    source.sql('insert into events (id, note) select g, md5(g::text) from generate_series(-2000, 0) g');
    base = await runBaseBackup(
      {
        cluster: CLUSTER,
        connection: { host: '127.0.0.1', port: source.port, user: 'postgres', database: 'postgres' },
        store,
        compression: { level: 1, threads: 1 },
        checkpoint: 'fast',
        walWaitMs: 60_000,
        storageClass: 'STANDARD',
      },
      { env: process.env, logger: silentLogger, pollMs: 100 },
    );
    for (let id = 1; id <= 6; id++) {
      const xid = source.sql(
        `begin; insert into events (id, note) values (${id}, 'row ${id}'); select txid_current(); commit;`,
      );
      const [after, lsn] = source.sql('select clock_timestamp(), pg_current_wal_lsn()').split('|');
      if (id === 3) source.sql("select pg_create_restore_point('before-row-4')");
      points.push({
        id,
        xid,
        after: new Date(after as string),
        lsn: lsn as string,
        digest: source.sql(DIGEST),
      });
      if (id % 2 === 0) await switchAndWaitArchived(source);
      await sleep(300);
    }
    await switchAndWaitArchived(source);
  });

  afterAll(() => {
    for (const pgdata of recovered) if (existsSync(join(pgdata, 'postmaster.pid'))) stopServer(pgdata);
    source?.remove();
  });

  const at = (id: number) => points.find((p) => p.id === id) as Point;

  it('recovers to a time between two commits: every row committed before it, none after, the same data as the source then', async () => {
    const target = new Date(at(3).after.getTime() + 100);
    const { report, sql, pgdata } = await recoverTo({ kind: 'time', time: target });
    expect(sql(DIGEST)).toBe(at(3).digest);
    expect(report).toMatchObject({
      baseId: base.id,
      started: true,
      passed: true,
      targetKind: 'time',
      timeline: 2,
    });
    expect(report.stoppedAt).toMatch(/recovery stopping before commit/);
    expect(Date.parse(report.recoveryPoint ?? '')).toBeLessThanOrEqual(target.getTime());
    expect(report.rtoSeconds).toBeGreaterThan(0);
    expect(report.checks.map((c) => [c.name, c.passed])).toEqual([
      ['postgres: connect', true],
      ['postgres: events readable', true],
    ]);
    expect(existsSync(join(pgdata, 'recovery.signal'))).toBe(false);
    expect(readFileSync(join(pgdata, 'postgresql.auto.conf'), 'utf8')).toMatch(
      /recovery_target_timeline = 'latest'/,
    );
    stopServer(pgdata);
  });

  it('recovers to a transaction, an LSN and a named restore point', async () => {
    const byXid = await recoverTo({ kind: 'xid', xid: at(2).xid });
    expect(byXid.sql(DIGEST)).toBe(at(2).digest);
    stopServer(byXid.pgdata);
    const byLsn = await recoverTo({ kind: 'lsn', lsn: parseLsn(at(5).lsn) as bigint });
    expect(byLsn.sql(DIGEST)).toBe(at(5).digest);
    stopServer(byLsn.pgdata);
    const byName = await recoverTo({ kind: 'name', name: 'before-row-4' });
    expect(byName.sql(DIGEST)).toBe(at(3).digest);
    expect(byName.report.stoppedAt).toMatch(/restore point "before-row-4"/);
    stopServer(byName.pgdata);
  });

  it('refuses a data directory that is not empty, and a target before the oldest base backup, writing nothing', async () => {
    const full = join(root, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'PG_VERSION'), '15\n');
    await expect(
      recover(
        { cluster: CLUSTER, store, pgdata: full, target: { kind: 'latest' }, restoreCommand: 'false' },
        { env: process.env, logger: silentLogger },
      ),
    ).rejects.toMatchObject({ name: 'RecoveryRefusedError', message: expect.stringMatching(/is not empty/) });
    expect(readdirSync(full)).toEqual(['PG_VERSION']);
    const early = join(root, 'early');
    await expect(
      recover(
        {
          cluster: CLUSTER,
          store,
          pgdata: early,
          target: { kind: 'time', time: new Date(Date.parse(base.startTime) - 60_000) },
          restoreCommand: 'false',
        },
        { env: process.env, logger: silentLogger },
      ),
    ).rejects.toMatchObject({
      name: 'RecoveryRefusedError',
      message: expect.stringMatching(/before the oldest base backup/),
    });
    expect(existsSync(early)).toBe(false);
  });

  it('refuses a gap in the archive, naming the missing segment and the furthest reachable point', async () => {
    const copyDir = postgresDir(root, 'gap-store');
    cpSync(storeDir, copyDir, { recursive: true });
    const folder = join(copyDir, '~cluster', CLUSTER, 'wal', base.stopWal.slice(0, 16));
    const names = readdirSync(folder)
      .filter((n) => /^[0-9A-F]{24}-/.test(n))
      .sort();
    const after = names.filter((n) => n.slice(0, 24) > base.stopWal);
    const removed = after[1] as string;
    rmSync(join(folder, removed));
    const pgdata = join(root, 'gap');
    await expect(
      recover(
        {
          cluster: CLUSTER,
          store: new FileStore(copyDir),
          pgdata,
          target: { kind: 'latest' },
          restoreCommand: 'false',
        },
        { env: process.env, logger: silentLogger },
      ),
    ).rejects.toThrow(new RegExp(`${removed.slice(0, 24)} is missing.*furthest point reachable`));
    expect(existsSync(pgdata)).toBe(false);
  });

  it('refuses a corrupted base backup by its digest and leaves the data directory as it was', async () => {
    const copyDir = postgresDir(root, 'corrupt-store');
    cpSync(storeDir, copyDir, { recursive: true });
    const tar = join(copyDir, base.key);
    const bytes = readFileSync(tar);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
    writeFileSync(tar, bytes);
    const pgdata = postgresDir(root, 'empty-target');
    await expect(
      recover(
        {
          cluster: CLUSTER,
          store: new FileStore(copyDir),
          pgdata,
          target: { kind: 'latest' },
          restoreCommand: 'false',
        },
        { env: process.env, logger: silentLogger },
      ),
    ).rejects.toMatchObject({ name: 'CorruptBackupError' });
    expect(readdirSync(pgdata)).toEqual([]);
    expect(readdirSync(root).filter((n) => n.includes('.pgbp-'))).toEqual([]);
  });

  it('recovers, promotes and writes on timeline 2, then recovers again to a point on timeline 2 and to its latest state', async () => {
    const first = await recoverTo({ kind: 'latest' }, { archive: true });
    expect(first.sql(DIGEST)).toBe(at(6).digest);
    expect(first.report.timeline).toBe(2);
    first.sql("insert into events (id, note) values (101, 'on timeline 2')");
    const [after] = first.sql('select clock_timestamp()').split('|');
    const onTwo = first.sql(DIGEST);
    await sleep(300);
    first.sql("insert into events (id, note) values (102, 'later on timeline 2')");
    const latestOnTwo = first.sql(DIGEST);
    await switchAndWaitArchived({ sql: first.sql });
    stopServer(first.pgdata);

    const point = await recoverTo({ kind: 'time', time: new Date(Date.parse(after as string) + 100) });
    expect(point.sql(DIGEST)).toBe(onTwo);
    expect(point.report.timelineFollowed).toBe(2);
    stopServer(point.pgdata);
    const latest = await recoverTo({ kind: 'latest' });
    expect(latest.sql(DIGEST)).toBe(latestOnTwo);
    stopServer(latest.pgdata);
  });
});
