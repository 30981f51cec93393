import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CopyObjectCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseBackupKeys, parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { s3Client } from '../../../lib/platform/aws-clients/s3.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { type ArchivingCluster, startArchivingCluster } from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { freePort } from '../../support/ports.js';
import { createBucket, listKeys } from '../../support/s3.js';
import { pgBin } from '../../support/scratch-cluster.js';
import { switchAndWaitArchived } from '../../support/wal.js';

const CLUSTER = 'main';
const ROWS = "select count(*) || ':' || coalesce(md5(string_agg(t::text, ',' order by id)), '') from t";

/** A cluster archiving with pgbp wal-push to the NAS (primary, a directory) and S3 (secondary). */
function startTwoStoreCluster(bucket: string): Promise<ArchivingCluster> {
  return startArchivingCluster({
    walSegmentMb: 1,
    config: (root, url) =>
      writeConfigFile(root, {
        stage: 'local',
        stores: { primary: { url }, secondary: { url: `s3://${bucket}/backups` } },
        wal: { cluster: CLUSTER },
        basebackup: { threads: 1 },
      }),
  });
}

/** A new, empty --pgdata beside the cluster that the postgres user may own. */
function emptyPgdata(archiving: ArchivingCluster, name: string): string {
  const dir = join(archiving.root, name);
  mkdirSync(dir, { mode: 0o700 });
  spawnSync('chown', ['postgres:postgres', dir]);
  return dir;
}

/** pgbp recover --latest into `pgdata` with the cluster's config; started on `port` if given. */
function recoverLatest(archiving: ArchivingCluster, pgdata: string, extra: string[], port?: number) {
  return runCli(
    [
      'recover',
      '--pgdata',
      pgdata,
      '--latest',
      ...(port ? ['--start', '--port', String(port)] : []),
      '--config',
      join(archiving.root, 'stage.yml'),
      '--json',
      ...extra,
    ],
    { env: { ...archiving.source.env(), ...(port ? { PGPORT: String(port) } : {}) } },
  );
}

/** Stops each recovered server that still runs in one of `dirs`. */
function stopServers(dirs: readonly string[]): void {
  for (const dir of dirs) {
    if (!existsSync(join(dir, 'postmaster.pid'))) continue;
    spawnSync('runuser', ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', dir, '-w', '-m', 'fast', 'stop'], {
      stdio: 'ignore',
    });
  }
}

/**
 * Recovery with a primary (a directory store, the NAS) and a secondary (S3 on moto), both
 * holding the base backup and the WAL (archive_command = pgbp wal-push to both): pgbp recover
 * reads the nearest good copy of the base backup and says which and why; --from forces one.
 */
describe('pgbp recover with a primary and a secondary store', { timeout: 300_000 }, () => {
  let archiving: ArchivingCluster;
  let config: string;
  let bucket: string;
  let baseId: string;
  let rows: string;
  const started: string[] = [];

  beforeAll(async () => {
    expect((await runCli(['--version'])).code).toBe(0);
    bucket = await createBucket();
    archiving = await startTwoStoreCluster(bucket);
    config = join(archiving.root, 'stage.yml');
    const { source } = archiving;
    source.sql('create table t (id int primary key, payload text)');
    source.sql('insert into t select g, md5(g::text) from generate_series(1, 5000) g');
    await switchAndWaitArchived(source);
    const taken = await runCli(['basebackup', '--config', config, '--json'], { env: source.env() });
    expect(taken.code, taken.stderr).toBe(0);
    const manifest = JSON.parse(taken.stdout) as { id: string; degraded: boolean };
    expect(manifest.degraded).toBe(false);
    baseId = manifest.id;
    // Written after the base backup: only the archived WAL brings these back.
    source.sql("update t set payload = 'after' where id % 3 = 0");
    source.sql("insert into t select g, 'late' from generate_series(5001, 6000) g");
    await switchAndWaitArchived(source);
    rows = source.sql(ROWS);
  });

  afterAll(() => {
    stopServers(started);
    archiving?.source.remove();
  });

  /** The primary's copy of the tar stream, on the NAS. */
  function primaryTar(): string {
    return join(archiving.storeDir as string, baseBackupKeys('', CLUSTER, baseId).tar('base'));
  }

  it('reads the secondary copy when the primary one has a flipped byte, says so, and recovers every row', async () => {
    const tar = primaryTar();
    const good = readFileSync(tar);
    const flipped = Buffer.from(good);
    const at = Math.floor(flipped.length / 2);
    flipped[at] = (flipped[at] ?? 0) ^ 0xff;
    writeFileSync(tar, flipped);
    try {
      // Forced to the damaged copy: refused, and --pgdata is as empty as it was.
      const forced = emptyPgdata(archiving, 'forced-primary');
      const refused = await recoverLatest(archiving, forced, ['--from', 'primary']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/CorruptBackupError: base backup .* is corrupt/);
      expect(readdirSync(forced)).toEqual([]);
      expect(readdirSync(archiving.root).filter((n) => n.startsWith('.forced-primary'))).toEqual([]);

      const pgdata = emptyPgdata(archiving, 'recovered');
      started.push(pgdata);
      const port = await freePort();
      const recovery = await recoverLatest(archiving, pgdata, [], port);
      expect(recovery.code, recovery.stderr).toBe(0);
      expect(recovery.stderr).toContain(
        `base backup ${baseId}: read the secondary store's copy (s3://${bucket}/backups): the primary copy was damaged: base backup ${baseId} is corrupt`,
      );
      const report = JSON.parse(recovery.stdout) as {
        baseId: string;
        copy: { role: string; passedOver: { role: string; reason: string }[] };
      };
      expect(report.baseId).toBe(baseId);
      expect(report.copy.role).toBe('secondary');
      expect(report.copy.passedOver.map((p) => p.role)).toEqual(['primary']);
      const psql = spawnSync(
        'psql',
        ['-X', '-Atq', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', ROWS],
        { encoding: 'utf8' },
      );
      expect(psql.stdout.trim()).toBe(rows);
      // Its wal-fetch reads both stores (the config, no --store): the nearest good copy of each segment.
      const restoreCommand = /^restore_command = '(.*)'$/m.exec(
        readFileSync(join(pgdata, 'postgresql.auto.conf'), 'utf8'),
      )?.[1];
      expect(restoreCommand).toContain(`--config ${config}`);
      expect(restoreCommand).not.toContain('--store');
    } finally {
      writeFileSync(tar, good);
    }
  });

  it('reads the secondary copy when the primary has none, and the one --from names', async () => {
    const manifest = join(archiving.storeDir as string, baseBackupKeys('', CLUSTER, baseId).manifest);
    renameSync(manifest, `${manifest}.away`);
    try {
      const missing = await recoverLatest(archiving, emptyPgdata(archiving, 'missing-primary'), []);
      expect(missing.code, missing.stderr).toBe(0);
      expect(missing.stderr).toContain(
        `base backup ${baseId}: read the secondary store's copy (s3://${bucket}/backups): the primary copy was missing`,
      );
    } finally {
      renameSync(`${manifest}.away`, manifest);
    }
    const nearest = await recoverLatest(archiving, emptyPgdata(archiving, 'nearest'), []);
    expect(nearest.code, nearest.stderr).toBe(0);
    expect(nearest.stderr).toContain(`base backup ${baseId}: read the primary store's copy (file://`);
    const forcedDir = emptyPgdata(archiving, 'forced-secondary');
    const forced = await recoverLatest(archiving, forcedDir, ['--from', 'secondary']);
    expect(readFileSync(join(forcedDir, 'postgresql.auto.conf'), 'utf8')).toContain(
      `--store s3://${bucket}/backups`,
    );
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ copy: { role: 'secondary', passedOver: [] } });
  });
});

/**
 * The archive checked before anything is written, with two stores: what the recovered server's
 * wal-fetch can read, the WAL of both. A cluster of its own: a server recovered and started here
 * promotes and archives a new timeline into the same stores, which a later recovery to the
 * latest state would follow.
 */
describe('pgbp recover checking the archive of both stores', { timeout: 300_000 }, () => {
  let archiving: ArchivingCluster;
  let config: string;
  let bucket: string;
  let baseId: string;
  /** Two segments written after the base backup, each archived in both stores, and later ones. */
  let first: string;
  let second: string;
  let rows: string;
  const started: string[] = [];

  beforeAll(async () => {
    bucket = await createBucket();
    archiving = await startTwoStoreCluster(bucket);
    config = join(archiving.root, 'stage.yml');
    const { source } = archiving;
    source.sql('create table t (id int primary key, payload text)');
    source.sql('insert into t select g, md5(g::text) from generate_series(1, 3000) g');
    await switchAndWaitArchived(source);
    const taken = await runCli(['basebackup', '--config', config, '--json'], { env: source.env() });
    expect(taken.code, taken.stderr).toBe(0);
    baseId = (JSON.parse(taken.stdout) as { id: string }).id;
    source.sql("insert into t select g, 'gap one' from generate_series(3001, 4000) g");
    first = await switchAndWaitArchived(source);
    source.sql("insert into t select g, 'gap two' from generate_series(4001, 5000) g");
    second = await switchAndWaitArchived(source);
    source.sql("insert into t select g, 'beyond' from generate_series(5001, 5500) g");
    await switchAndWaitArchived(source);
    rows = source.sql(ROWS);
  });

  afterAll(() => {
    stopServers(started);
    archiving?.source.remove();
  });

  /** Takes a segment out of the NAS until the returned function puts it back. */
  async function hideOnNas(name: string): Promise<() => void> {
    const dir = archiving.storeDir as string;
    for await (const o of new FileStore(dir).list('~cluster/')) {
      if (parseWalObjectKey(o.key)?.name !== name) continue;
      renameSync(join(dir, o.key), join(dir, `${o.key}.away`));
      return () => renameSync(join(dir, `${o.key}.away`), join(dir, o.key));
    }
    throw new Error(`${name} is not on the NAS`);
  }

  /** Takes a segment out of the bucket (kept aside, metadata and all) until put back. */
  async function hideInS3(name: string): Promise<() => Promise<void>> {
    const key = (await listKeys(bucket, 'backups/~cluster/')).find(
      (k) => parseWalObjectKey(k)?.name === name,
    );
    if (!key) throw new Error(`${name} is not in the bucket`);
    const move = async (from: string, to: string) => {
      await s3Client().send(
        new CopyObjectCommand({ Bucket: bucket, CopySource: `${bucket}/${from}`, Key: to }),
      );
      await s3Client().send(new DeleteObjectCommand({ Bucket: bucket, Key: from }));
    };
    await move(key, `aside/${key}`);
    return () => move(`aside/${key}`, key);
  }

  it('refuses a segment no store holds, naming it, the furthest point reachable and both stores, writing nothing', async () => {
    const backOnNas = await hideOnNas(first);
    const backInS3 = await hideInS3(first);
    try {
      const pgdata = emptyPgdata(archiving, 'no-store-holds');
      const refused = await recoverLatest(archiving, pgdata, []);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(
        new RegExp(
          `RecoveryRefusedError: cannot recover cluster ${CLUSTER} to the latest archived state from base backup ${baseId}: WAL segment ${first} is missing from the archive.*; the furthest point reachable is [0-9A-F]+/[0-9A-F]+ \\(end of [0-9A-F]{24}, archived .*\\) \\(the WAL of the primary store \\(file://${archiving.storeDir}\\), the secondary store \\(s3://${bucket}/backups\\)\\)`,
        ),
      );
      expect(readdirSync(pgdata)).toEqual([]);
      expect(readdirSync(archiving.root).filter((n) => n.startsWith('.no-store-holds'))).toEqual([]);
    } finally {
      backOnNas();
      await backInS3();
    }
  });

  it('is no gap where one store lacks a segment the other holds: the primary copy is read and every row comes back', async () => {
    // Each store lacks one segment: neither archive alone reaches the latest state.
    const backOnNas = await hideOnNas(first);
    const backInS3 = await hideInS3(second);
    try {
      // --from primary: its wal-fetch reads the NAS alone, which lacks the segment: refused.
      const alone = emptyPgdata(archiving, 'from-primary');
      const refused = await recoverLatest(archiving, alone, ['--from', 'primary']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(
        new RegExp(`WAL segment ${first} is missing from the archive.*the furthest point reachable is`),
      );
      expect(readdirSync(alone)).toEqual([]);

      const pgdata = emptyPgdata(archiving, 'both');
      started.push(pgdata);
      const port = await freePort();
      const recovery = await recoverLatest(archiving, pgdata, [], port);
      expect(recovery.code, recovery.stderr).toBe(0);
      expect(recovery.stderr).toContain(
        `base backup ${baseId}: read the primary store's copy (file://${archiving.storeDir})`,
      );
      const report = JSON.parse(recovery.stdout) as { copy: { role: string; passedOver: unknown[] } };
      expect(report.copy).toMatchObject({ role: 'primary', passedOver: [] });
      const psql = spawnSync(
        'psql',
        ['-X', '-Atq', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', ROWS],
        { encoding: 'utf8' },
      );
      expect(psql.stdout.trim()).toBe(rows);
    } finally {
      backOnNas();
      await backInS3();
    }
  });
});
