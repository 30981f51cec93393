import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBaseBackups } from '../../../lib/catalog/physical.js';
import { baseBackupKeys, parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { isEnvelope } from '../../../lib/storage/encrypting-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import type { SyncedPhysical } from '../../../lib/sync/physical-report.js';
import { type ArchivingCluster, startArchivingCluster } from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { freePort } from '../../support/ports.js';
import { createBucket, listKeys } from '../../support/s3.js';
import { pgBin, postgresDir, postgresIds } from '../../support/scratch-cluster.js';
import { switchAndWaitArchived } from '../../support/wal.js';

const ROWS = "select count(*) || ':' || coalesce(md5(string_agg(t::text, ',' order by id)), '') from t";

/**
 * A cluster archiving with pgbp wal-push to the NAS alone (S3 was unreachable), a base backup
 * taken to the NAS alone; then the stage's two stores (the NAS, and S3 on moto encrypting under
 * a key file of its own) are synced, and the cluster is recovered from S3 with a one-store
 * config, as after losing the NAS.
 */
let archiving: ArchivingCluster;
let bucket: string;
let twoStores: string;
let s3Only: string;
let recovered: string | undefined;

beforeAll(async () => {
  expect((await runCli(['--version'])).code).toBe(0);
  archiving = await startArchivingCluster({
    walSegmentMb: 1,
    config: (root, url) =>
      writeConfigFile(root, {
        stage: 'local',
        store: url,
        basebackup: { threads: 1 },
        alerts: { console: false },
      }),
  });
  bucket = await createBucket();
  // Read by wal-fetch as postgres when the recovered server replays from S3.
  const key = join(archiving.root, 's3.key');
  writeFileSync(key, randomBytes(32), { mode: 0o600 });
  chownSync(key, postgresIds().uid, postgresIds().gid);
  const s3 = { url: `s3://${bucket}/backups`, encryption: { keyFile: key } };
  twoStores = await writeConfigFile(postgresDir(archiving.root, 'two'), {
    stage: 'local',
    stores: { primary: { url: archiving.url }, secondary: s3 },
    alerts: { console: false },
  });
  s3Only = await writeConfigFile(postgresDir(archiving.root, 's3'), {
    stage: 'local',
    store: s3.url,
    encryption: s3.encryption,
    alerts: { console: false },
  });
}, 120_000);

afterAll(() => {
  if (recovered && existsSync(join(recovered, 'postmaster.pid'))) {
    spawnSync(
      'runuser',
      ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', recovered, '-w', '-m', 'fast', 'stop'],
      {
        stdio: 'ignore',
      },
    );
  }
  archiving?.source.remove();
});

describe('pgbp sync of base backups', { timeout: 300_000 }, () => {
  it('copies a base backup only the NAS holds to S3, from which pgbp recover restores the source rows', async () => {
    const { source } = archiving;
    source.sql('create table t (id int primary key, payload text)');
    source.sql('insert into t select g, md5(g::text) from generate_series(1, 5000) g');
    await switchAndWaitArchived(source);
    const nasConfig = archiving.archiveArgs[1] as string;
    const taken = await runCli(['basebackup', '--config', nasConfig, '--json'], { env: source.env() });
    expect(taken.code, taken.stderr).toBe(0);
    const base = JSON.parse(taken.stdout) as { id: string; sha256: string };
    source.sql("insert into t select g, 'late' from generate_series(5001, 6000) g");
    await switchAndWaitArchived(source);
    const rows = source.sql(ROWS);
    // What a base backup killed before its manifest leaves: debris, never copied.
    const debris = baseBackupKeys('', 'main', '20260101T000000Z');
    mkdirSync(join(archiving.storeDir as string, debris.folder), { recursive: true });
    writeFileSync(join(archiving.storeDir as string, debris.tar('base')), 'not a base backup');

    const sync = await runCli(['sync', '--config', twoStores, '--json']);
    expect(sync.stderr).toBe('');
    expect(sync.code).toBe(0);
    const lines = sync.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as SyncedPhysical)
      .filter((l) => 'kind' in l);
    expect(lines.filter((l) => l.kind === 'base')).toEqual([
      expect.objectContaining({ name: base.id, from: 'primary', to: 'secondary', status: 'copied' }),
    ]);
    expect(lines.filter((l) => l.status !== 'copied')).toEqual([]);
    expect(lines.filter((l) => l.kind === 'segment').length).toBeGreaterThan(1);

    const keys = baseBackupKeys('backups', 'main', base.id);
    const s3Keys = await listKeys(bucket, 'backups/~cluster/main/base/');
    expect(s3Keys).toEqual(expect.arrayContaining([keys.manifest, keys.tar('base')]));
    expect(s3Keys.some((k) => k.includes('20260101T000000Z'))).toBe(false);
    // Stored under S3's own key: ciphertext, its manifest naming the envelope and its digest.
    const { bases } = await listBaseBackups(new S3Store(bucket, 'backups'), 'main');
    expect(bases.map((b) => b.id)).toEqual([base.id]);
    expect(bases[0]?.encryption.envelope).toBeDefined();
    expect(bases[0]?.sha256).not.toBe(base.sha256);
    const walKey = (await listKeys(bucket, 'backups/~cluster/main/wal/')).find((k) => parseWalObjectKey(k));
    const raw = new S3Store(bucket, 'backups');
    expect(isEnvelope(await raw.getBytes(walKey as string))).toBe(true);

    recovered = join(archiving.root, 'recovered');
    const port = await freePort();
    const recovery = await runCli(
      [
        'recover',
        '--pgdata',
        recovered,
        '--latest',
        '--start',
        '--port',
        String(port),
        '--config',
        s3Only,
        '--json',
      ],
      { env: { ...source.env(), PGPORT: String(port) } },
    );
    expect(recovery.stderr).toBe('');
    expect(recovery.code).toBe(0);
    expect(JSON.parse(recovery.stdout)).toMatchObject({ baseId: base.id });
    const psql = spawnSync(
      'psql',
      ['-X', '-Atq', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', ROWS],
      { encoding: 'utf8' },
    );
    expect(psql.stdout.trim()).toBe(rows);
    expect(readFileSync(join(recovered, 'postgresql.auto.conf'), 'utf8')).toContain(s3Only);
  });

  it('does not copy a base backup whose tar does not match its manifest, and leaves nothing of it', async () => {
    const nasConfig = archiving.archiveArgs[1] as string;
    const taken = await runCli(['basebackup', '--config', nasConfig, '--json'], {
      env: archiving.source.env(),
    });
    expect(taken.code, taken.stderr).toBe(0);
    const base = JSON.parse(taken.stdout) as { id: string; key: string };
    const tar = join(archiving.storeDir as string, base.key);
    const bytes = readFileSync(tar);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    writeFileSync(tar, bytes);

    const sync = await runCli(['sync', '--config', twoStores]);
    expect(sync.code).toBe(1);
    expect(sync.stdout).toMatch(
      new RegExp(
        `^FAILED  main ${base.id} primary → secondary: base backup ${base.id} in the primary store .*does not match its manifest.*not copied$`,
        'm',
      ),
    );
    expect(sync.stdout).toMatch(/^main primary → secondary: 1 base backup\(s\) FAILED$/m);
    expect(await listKeys(bucket, `backups/~cluster/main/base/${base.id}`)).toEqual([]);
  });
});
