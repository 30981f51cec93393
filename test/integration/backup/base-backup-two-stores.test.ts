import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBaseBackupToStores } from '../../../lib/backup/base-backup.js';
import { listBaseBackups } from '../../../lib/catalog/physical.js';
import { parseBaseManifest } from '../../../lib/domain/base-backup.js';
import { baseBackupKeys } from '../../../lib/domain/physical-layout.js';
import { isDegraded } from '../../../lib/domain/store-roles.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { defaultSpawn, type Spawn } from '../../../lib/platform/processes.js';
import { openStore } from '../../../lib/storage/open-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { type ArchivingCluster, startArchivingCluster } from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { freePort } from '../../support/ports.js';
import { createBucket, listKeys } from '../../support/s3.js';
import { postgresDir } from '../../support/scratch-cluster.js';
import { switchAndWaitArchived } from '../../support/wal.js';

const CLUSTER = 'main';

/**
 * Base backups to a primary (a directory store, the NAS) and a secondary (S3 on moto): one
 * pg_basebackup, its compressed stream fanned out, each copy a base backup of its store only once
 * that store's archive holds its WAL (archive_command = pgbp wal-push to both stores).
 */
describe('a base backup to a primary and a secondary store', { timeout: 240_000 }, () => {
  let archiving: ArchivingCluster;
  let bucket: string;

  beforeAll(async () => {
    expect((await runCli(['--version'])).code).toBe(0);
    bucket = await createBucket();
    archiving = await startArchivingCluster({
      walSegmentMb: 1,
      config: (root, url) =>
        writeConfigFile(root, {
          stage: 'local',
          stores: { primary: { url }, secondary: { url: `s3://${bucket}/backups` } },
          wal: { cluster: CLUSTER },
        }),
    });
    archiving.source.sql('create table t (id int primary key, note text)');
    archiving.source.sql('insert into t select g, md5(g::text) from generate_series(1, 20000) g');
    await switchAndWaitArchived(archiving.source);
  });
  afterAll(() => archiving?.source.remove());

  it('stores one pg_basebackup in both, each with its own manifest listing the same digest', async () => {
    const nas = await openStore(archiving.url);
    const s3 = new S3Store(bucket, 'backups');
    let basebackups = 0;
    const spawn: Spawn = (command, args, options) => {
      if (command === 'pg_basebackup') basebackups += 1;
      return defaultSpawn(command, args, options);
    };

    const { manifest, copies } = await runBaseBackupToStores(
      {
        cluster: CLUSTER,
        connection: {
          host: '127.0.0.1',
          port: archiving.source.port,
          user: 'postgres',
          database: 'postgres',
        },
        store: nas,
        compression: { level: 1, threads: 1 },
        checkpoint: 'fast',
        walWaitMs: 60_000,
        storageClass: 'STANDARD',
        secondary: { store: s3, storageClass: 'STANDARD' },
      },
      { env: process.env, logger: silentLogger, pollMs: 100, spawn },
    );

    expect(basebackups).toBe(1);
    expect(copies.map((c) => [c.role, c.status])).toEqual([
      ['primary', 'stored'],
      ['secondary', 'stored'],
    ]);
    const nasKeys = baseBackupKeys(nas.prefix, CLUSTER, manifest.id);
    const s3Keys = baseBackupKeys('backups', CLUSTER, manifest.id);
    const onNas = parseBaseManifest(JSON.parse((await nas.getBytes(nasKeys.manifest)).toString()));
    const inS3 = parseBaseManifest(JSON.parse((await s3.getBytes(s3Keys.manifest)).toString()));
    expect(inS3.key).toBe(s3Keys.tar('base'));
    expect(inS3.sha256).toBe(onNas.sha256);
    expect([inS3.startLsn, inS3.stopLsn, inS3.sizeBytes]).toEqual([
      onNas.startLsn,
      onNas.stopLsn,
      onNas.sizeBytes,
    ]);
    expect((await s3.getBytes(s3Keys.tar('base'))).equals(await nas.getBytes(nasKeys.tar('base')))).toBe(
      true,
    );
    const [nasBases, s3Bases] = await Promise.all([
      listBaseBackups(nas, CLUSTER),
      listBaseBackups(s3, CLUSTER),
    ]);
    expect(nasBases.bases.map((b) => b.id)).toContain(manifest.id);
    expect(s3Bases.bases.map((b) => b.id)).toContain(manifest.id);
  });

  it('lands on the NAS when S3 is unreachable, and says the secondary failed', async () => {
    const nas = await openStore(archiving.url);
    const down = new S3Store('pgbp-gone', 'backups', {
      client: new S3Client({
        endpoint: `http://127.0.0.1:${await freePort()}`,
        forcePathStyle: true,
        maxAttempts: 2,
        region: 'us-east-1',
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      }),
    });

    const { manifest, copies } = await runBaseBackupToStores(
      {
        cluster: CLUSTER,
        connection: {
          host: '127.0.0.1',
          port: archiving.source.port,
          user: 'postgres',
          database: 'postgres',
        },
        store: nas,
        compression: { level: 1, threads: 1 },
        checkpoint: 'fast',
        walWaitMs: 60_000,
        storageClass: 'STANDARD',
        secondary: { store: down, storageClass: 'STANDARD' },
      },
      { env: process.env, logger: silentLogger, pollMs: 100 },
    );

    expect(isDegraded(copies)).toBe(true);
    expect(copies[0]).toMatchObject({ role: 'primary', status: 'stored' });
    expect(copies[1]).toMatchObject({ role: 'secondary', status: 'failed', url: 's3://pgbp-gone/backups' });
    expect(await nas.head(baseBackupKeys(nas.prefix, CLUSTER, manifest.id).manifest)).toBeDefined();
  });

  it('keeps no copy in a store whose archive lacks the WAL: pgbp basebackup says DEGRADED, the NAS copy stands', async () => {
    // A second bucket as the secondary: the stream reaches it, its archive holds none of the WAL.
    const empty = await createBucket();
    // Its own file: archive_command reads the one in the cluster's root.
    const config = await writeConfigFile(postgresDir(archiving.root, 'cli'), {
      stage: 'local',
      stores: { primary: { url: archiving.url }, secondary: { url: `s3://${empty}/backups` } },
      wal: { cluster: CLUSTER },
      basebackup: { threads: 1, walWait: '3s' },
    });

    const result = await runCli(['basebackup', '--config', config, '--json'], {
      env: archiving.source.env(),
    });

    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as {
      id: string;
      degraded: boolean;
      copies: { role: string; status: string; error?: { message: string } }[];
    };
    expect(out.degraded).toBe(true);
    expect(out.copies.map((c) => [c.role, c.status])).toEqual([
      ['primary', 'stored'],
      ['secondary', 'failed'],
    ]);
    expect(out.copies[1]?.error?.message).toMatch(/backup history file .* did not reach the archive/);
    expect(result.stderr).toContain(
      `DEGRADED: base backup ${out.id} not stored in the secondary store s3://${empty}/backups:`,
    );
    // Nothing of it in the secondary: no tar stream, no manifest.
    expect(await listKeys(empty, `backups/~cluster/${CLUSTER}/base/`)).toEqual([]);
    const nas = await openStore(archiving.url);
    expect((await listBaseBackups(nas, CLUSTER)).bases.map((b) => b.id)).toContain(out.id);
  });
});
