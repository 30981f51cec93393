import { execFileSync, spawn as nodeSpawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBaseBackup } from '../../../lib/backup/base-backup.js';
import { listBaseBackups } from '../../../lib/catalog/physical.js';
import { baseBackupKeys } from '../../../lib/domain/physical-layout.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { runCli } from '../../support/cli.js';
import {
  pgBin,
  postgresDir,
  type ScratchCluster,
  scratchRoot,
  startCluster,
} from '../../support/scratch-cluster.js';
import { layoutArchiveCommand } from '../../support/wal-archive.js';

const CLUSTER = 'main';

function connectionOf(cluster: ScratchCluster) {
  return { host: '127.0.0.1', port: cluster.port, user: 'postgres', database: 'postgres' };
}

describe('pgbp basebackup', () => {
  let root: string;
  let cluster: ScratchCluster;
  let storeDir: string;

  beforeAll(async () => {
    root = scratchRoot();
    storeDir = postgresDir(root, 'store');
    cluster = await startCluster({
      root,
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: layoutArchiveCommand(root, storeDir, CLUSTER),
      },
    });
    cluster.sql('create table t (id int primary key, note text)');
    cluster.sql('insert into t select g, md5(g::text) from generate_series(1, 20000) g');
  });
  afterAll(() => cluster?.remove());

  it('stores the data directory as one zstd tar stream with its digest and PostgreSQL backup_manifest inside, and our manifest last', async () => {
    const store = new FileStore(storeDir);
    const manifest = await runBaseBackup(
      {
        cluster: CLUSTER,
        connection: connectionOf(cluster),
        store,
        compression: { level: 1, threads: 1 },
        checkpoint: 'fast',
        walWaitMs: 60_000,
        storageClass: 'STANDARD',
      },
      { env: process.env, logger: silentLogger, pollMs: 100 },
    );
    const systemId = cluster.sql('select system_identifier from pg_control_system()');
    expect(manifest).toMatchObject({
      manifestVersion: 2,
      cluster: CLUSTER,
      systemIdentifier: systemId,
      timeline: 1,
      serverMajor: 15,
    });
    expect(manifest.tablespaces).toEqual(['pg_default', 'pg_global']);
    const keys = baseBackupKeys('', CLUSTER, manifest.id);
    expect(readdirSync(join(storeDir, keys.folder))).toEqual(['base.tar.zst']);
    const tarPath = join(storeDir, keys.tar('base'));
    const bytes = readFileSync(tarPath);
    expect(bytes.length).toBe(manifest.sizeBytes);
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(manifest.sha256);

    // Restorable with plain tools: zstd and tar, then pg_verifybackup against the manifest inside.
    const out = mkdtempSync(join(root, 'restored-'));
    try {
      execFileSync('sh', ['-c', `zstd -d -q -c ${tarPath} | tar -x -C ${out}`]);
      execFileSync(pgBin('pg_verifybackup'), ['--no-parse-wal', out]);
      // Where the backup starts and stops is the server's: its backup_label and backup_manifest.
      const label = readFileSync(join(out, 'backup_label'), 'utf8');
      expect(label).toContain(`START WAL LOCATION: ${manifest.startLsn} (file ${manifest.startWal})`);
      expect(label).toContain(`LABEL: pgbp base backup ${manifest.id}`);
      const ranges = JSON.parse(readFileSync(join(out, 'backup_manifest'), 'utf8'))['WAL-Ranges'];
      expect(ranges).toEqual([{ Timeline: 1, 'Start-LSN': manifest.startLsn, 'End-LSN': manifest.stopLsn }]);
      const tarBytes = execFileSync('sh', ['-c', `zstd -d -q -c ${tarPath} | wc -c`], { encoding: 'utf8' });
      expect(manifest.originalBytes).toBe(Number(tarBytes.trim()));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const { bases } = await listBaseBackups(store, CLUSTER);
    expect(bases.map((b) => b.id)).toContain(manifest.id);
  });

  it('is taken by pgbp basebackup with the stage config, and printed as JSON', async () => {
    const config = join(root, 'stage.yml');
    writeFileSync(
      config,
      `stage: local\nstore: file://${storeDir}\nwal: { cluster: ${CLUSTER} }\nbasebackup: { threads: 1 }\n`,
    );
    const result = await runCli(['basebackup', '--config', config, '--json'], { env: cluster.env() });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const manifest = JSON.parse(result.stdout) as { id: string; stopWal: string };
    expect(existsSync(join(storeDir, baseBackupKeys('', CLUSTER, manifest.id).manifest))).toBe(true);
  });
});

describe('pgbp basebackup refuses', () => {
  it('a cluster with tablespaces outside its data directory, naming them', async () => {
    const root = scratchRoot();
    const cluster = await startCluster({
      root,
      settings: { wal_level: 'replica', archive_mode: 'on', archive_command: '/bin/true' },
    });
    try {
      const location = postgresDir(root, 'ts_far');
      cluster.sql(`create tablespace far_away location '${location}'`);
      const store = new FileStore(postgresDir(root, 'store'));
      await expect(
        runBaseBackup(
          {
            cluster: CLUSTER,
            connection: connectionOf(cluster),
            store,
            compression: { level: 1, threads: 1 },
            checkpoint: 'fast',
            walWaitMs: 5_000,
            storageClass: 'STANDARD',
          },
          { env: process.env, logger: silentLogger },
        ),
      ).rejects.toThrow(/tablespaces outside its data directory: far_away \(/);
      expect(readdirSync(store.root)).toEqual([]);
    } finally {
      cluster.remove();
    }
  });

  it('to keep a backup whose WAL never reaches the archive, and leaves nothing', async () => {
    const root = scratchRoot();
    const cluster = await startCluster({
      root,
      settings: { wal_level: 'replica', archive_mode: 'on', archive_command: '/bin/false' },
    });
    try {
      const store = new FileStore(postgresDir(root, 'store'));
      await expect(
        runBaseBackup(
          {
            cluster: CLUSTER,
            connection: connectionOf(cluster),
            store,
            compression: { level: 1, threads: 1 },
            checkpoint: 'fast',
            walWaitMs: 2_000,
            storageClass: 'STANDARD',
          },
          { env: process.env, logger: silentLogger, pollMs: 100 },
        ),
      ).rejects.toMatchObject({ name: 'BaseBackupFailedError', message: expect.stringMatching(/archive/) });
      const left = execFileSync('find', [store.root, '-type', 'f'], { encoding: 'utf8' }).trim();
      expect(left).toBe('');
    } finally {
      cluster.remove();
    }
  });

  it('to keep a backup when zstd fails part-way, naming it, and leaves nothing', async () => {
    const root = scratchRoot();
    const storeDir = postgresDir(root, 'store');
    const cluster = await startCluster({
      root,
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: layoutArchiveCommand(root, storeDir, CLUSTER),
      },
    });
    try {
      cluster.sql('create table t as select g as id, md5(g::text) as note from generate_series(1, 20000) g');
      const store = new FileStore(storeDir);
      // A compressor that reads a little of the tar stream, then fails as on a full disk.
      const failingZstd = (command: string, args: readonly string[], options: object) =>
        command === 'zstd'
          ? nodeSpawn(
              'sh',
              [
                '-c',
                'head -c 100000 >/dev/null; echo "zstd: error 70 : Write error : No space left on device" >&2; exit 1',
              ],
              options,
            )
          : nodeSpawn(command, [...args], options);
      await expect(
        runBaseBackup(
          {
            cluster: CLUSTER,
            connection: connectionOf(cluster),
            store,
            compression: { level: 1, threads: 1 },
            checkpoint: 'fast',
            walWaitMs: 10_000,
            storageClass: 'STANDARD',
          },
          { env: process.env, logger: silentLogger, pollMs: 100, spawn: failingZstd },
        ),
      ).rejects.toMatchObject({
        name: 'BaseBackupFailedError',
        message: expect.stringMatching(/^zstd exited with code 1: .*No space left on device/),
      });
      const base = join(storeDir, '~cluster', CLUSTER, 'base');
      const left = existsSync(base)
        ? execFileSync('find', [base, '-type', 'f'], { encoding: 'utf8' }).trim()
        : '';
      expect(left).toBe('');
    } finally {
      cluster.remove();
    }
  });

  it('to keep a backup whose backup history file is not in the archive, and leaves nothing', async () => {
    const root = scratchRoot();
    const storeDir = postgresDir(root, 'store');
    const archive = layoutArchiveCommand(root, storeDir, CLUSTER);
    const cluster = await startCluster({
      root,
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        // Segments are stored; the backup history file is acknowledged and dropped.
        archive_command: `case %f in *.backup) exit 0;; esac; ${archive}`,
      },
    });
    try {
      const store = new FileStore(storeDir);
      await expect(
        runBaseBackup(
          {
            cluster: CLUSTER,
            connection: connectionOf(cluster),
            store,
            compression: { level: 1, threads: 1 },
            checkpoint: 'fast',
            walWaitMs: 2_000,
            storageClass: 'STANDARD',
          },
          { env: process.env, logger: silentLogger, pollMs: 100 },
        ),
      ).rejects.toMatchObject({
        name: 'BaseBackupFailedError',
        message: expect.stringMatching(
          /backup history file of "pgbp base backup \d{8}T\d{6}Z" did not reach the archive/,
        ),
      });
      const base = join(storeDir, '~cluster', CLUSTER, 'base');
      const left = existsSync(base)
        ? execFileSync('find', [base, '-type', 'f'], { encoding: 'utf8' }).trim()
        : '';
      expect(left).toBe('');
    } finally {
      cluster.remove();
    }
  });
});
