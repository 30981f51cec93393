import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDumpToStores } from '../../../lib/backup/dump.js';
import { parseConfig } from '../../../lib/config.js';
import { parseManifest } from '../../../lib/domain/manifest.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { defaultSpawn, type Spawn } from '../../../lib/platform/processes.js';
import { resolveConnection } from '../../../lib/postgres/pg-tools.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { syncStores } from '../../../lib/sync/sync.js';
import { runCli } from '../../support/cli.js';
import { createDatabase, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import { freePort } from '../../support/ports.js';
import { createBucket, inProgressUploads, listKeys } from '../../support/s3.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-two-stores-'));
const config = parseConfig({ stage: 'local', store: 'file:///unused' }, 'test');
let database: string;
/** Databases the restores below create, dropped at the end. */
const restored: string[] = [];
/** A tiny file system of its own, for a NAS that fills up mid-dump. */
let fullNas: string | undefined;

/** Every file under a directory, hidden ones (temporary names) included. */
function filesUnder(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

/** A spawn that counts the pg_dump runs (not its --version). */
function countingSpawn(): { spawn: Spawn; dumps: () => number } {
  let dumps = 0;
  const spawn: Spawn = (command, args, options) => {
    if ([command, ...args].includes('pg_dump') && !args.includes('--version')) dumps += 1;
    return defaultSpawn(command, args, options);
  };
  return { spawn, dumps: () => dumps };
}

function dumpTo(primary: BackupStore, secondary: BackupStore, spawn: Spawn) {
  return runDumpToStores(
    {
      database,
      connection: resolveConnection(config, process.env, database),
      store: primary,
      compression: { codec: 'zstd', level: 1, threads: 1 },
      storageClass: 'STANDARD',
      secondary: { store: secondary, storageClass: 'STANDARD' },
    },
    { env: process.env, logger: silentLogger, spawn },
  );
}

/** An S3 store whose endpoint answers nothing: S3 down, as a dump sees it. */
async function unreachableS3(): Promise<S3Store> {
  const client = new S3Client({
    endpoint: `http://127.0.0.1:${await freePort()}`,
    forcePathStyle: true,
    maxAttempts: 2,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  return new S3Store('pgbp-gone', 'backups', { client });
}

beforeAll(async () => {
  database = uniqueDbName('two_stores');
  // ~3 MB of incompressible rows: more than the small file system below holds.
  await createDatabase(
    database,
    `create table blobs as select g as id, decode(string_agg(md5(g::text || random()::text), ''), 'hex') as payload
       from generate_series(1, 1500) g, generate_series(1, 128) x group by g`,
  );
});

afterAll(async () => {
  await dropDatabase(database);
  for (const name of restored) await dropDatabase(name);
  if (fullNas) spawnSync('umount', [fullNas]);
  rmSync(work, { recursive: true, force: true });
});

describe('a dump to a primary and a secondary store', () => {
  it('stores one pg_dump in both, each with its own manifest listing the same digest', async () => {
    const nas = new FileStore(join(work, 'nas'));
    const bucket = await createBucket();
    const s3 = new S3Store(bucket, 'backups');
    const { spawn, dumps } = countingSpawn();

    const { manifest, copies } = await dumpTo(nas, s3, spawn);

    expect(dumps()).toBe(1);
    expect(copies.map((c) => [c.role, c.status])).toEqual([
      ['primary', 'stored'],
      ['secondary', 'stored'],
    ]);
    const onNas = parseManifest(
      JSON.parse((await nas.getBytes(manifest.key.replace(/\.dump$/, '.manifest.json'))).toString()),
    );
    const s3Key = `backups/${manifest.key}`;
    const inS3 = parseManifest(
      JSON.parse((await s3.getBytes(s3Key.replace(/\.dump$/, '.manifest.json'))).toString()),
    );
    expect(inS3.key).toBe(s3Key);
    expect(onNas.sha256).toBe(inS3.sha256);
    expect(inS3.sizeBytes).toBe(onNas.sizeBytes);
    expect((await s3.getBytes(s3Key)).equals(await nas.getBytes(manifest.key))).toBe(true);
  });

  it('lands on the NAS when S3 is unreachable, and says the secondary failed', async () => {
    const nas = new FileStore(join(work, 'nas-alone'));
    const { spawn, dumps } = countingSpawn();

    const { manifest, copies } = await dumpTo(nas, await unreachableS3(), spawn);

    expect(dumps()).toBe(1);
    expect(copies[0]).toMatchObject({ role: 'primary', status: 'stored' });
    expect(copies[1]).toMatchObject({ role: 'secondary', status: 'failed', url: 's3://pgbp-gone/backups' });
    expect(await nas.head(manifest.key)).toMatchObject({ size: manifest.sizeBytes });
  });

  it('lands in S3 when the NAS fills up, leaving no manifest and no file of the copy on the NAS', async () => {
    fullNas = join(work, 'full-nas');
    mkdirSync(fullNas);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', fullNas]);
    expect(mounted.status, mounted.stderr.toString()).toBe(0);
    const nas = new FileStore(fullNas);
    const bucket = await createBucket();
    const s3 = new S3Store(bucket, 'backups');

    const { manifest, copies } = await dumpTo(nas, s3, countingSpawn().spawn);

    expect(copies[0]).toMatchObject({ role: 'primary', status: 'failed' });
    expect(copies[0]?.status === 'failed' && copies[0].error.message).toMatch(/ENOSPC/);
    expect(copies[1]).toMatchObject({ role: 'secondary', status: 'stored' });
    expect(manifest.key).toBe(`backups/${manifest.key.slice('backups/'.length)}`);
    expect(filesUnder(fullNas)).toEqual([]);
    expect((await listKeys(bucket)).sort()).toEqual(
      ['.dump', '.globals.json', '.globals.sql', '.manifest.json'].map((ext) =>
        manifest.key.replace(/\.dump$/, ext),
      ),
    );
    expect(await inProgressUploads(bucket)).toBe(0);

    // The NAS has room again: sync copies the backup back from S3, verified.
    spawnSync('umount', [fullNas]);
    fullNas = undefined;
    const roomy = new FileStore(join(work, 'full-nas'));
    const synced = await syncStores({
      stores: [
        { role: 'primary', store: roomy, storageClass: 'STANDARD' },
        { role: 'secondary', store: s3, storageClass: 'STANDARD' },
      ],
      database,
      rules: () => ({ daily: 7, monthly: 0, yearly: 0, minKeep: 1, debrisGrace: 0 }),
      now: new Date(),
      logger: silentLogger,
    });
    expect(synced).toMatchObject([
      { backupId: manifest.id, from: 'secondary', to: 'primary', status: 'copied' },
    ]);
    const local = manifest.key.slice('backups/'.length);
    expect((await roomy.getBytes(local)).equals(await s3.getBytes(manifest.key))).toBe(true);
    const copied = parseManifest(
      JSON.parse((await roomy.getBytes(local.replace(/\.dump$/, '.manifest.json'))).toString()),
    );
    expect(copied).toMatchObject({ key: local, sha256: manifest.sha256, sizeBytes: manifest.sizeBytes });
    // The cluster globals taken with the dump came along, with their own manifest.
    const globals = local.replace(/\.dump$/, '.globals.sql');
    expect(
      (await roomy.getBytes(globals)).equals(
        await s3.getBytes(manifest.key.replace(/\.dump$/, '.globals.sql')),
      ),
    ).toBe(true);
    expect(
      JSON.parse((await roomy.getBytes(local.replace(/\.dump$/, '.globals.json'))).toString()),
    ).toMatchObject({
      key: globals,
      backupId: manifest.id,
    });
  });

  it('copies nothing whose bytes do not match the manifest', async () => {
    const source = new FileStore(join(work, 'flipped'));
    const target = new FileStore(join(work, 'flipped-target'));
    const { manifest } = await dumpTo(
      source,
      new FileStore(join(work, 'flipped-other')),
      countingSpawn().spawn,
    );
    const path = join(work, 'flipped', manifest.key);
    const bytes = readFileSync(path);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] as number) ^ 0x01;
    writeFileSync(path, bytes);

    const synced = await syncStores({
      stores: [
        { role: 'primary', store: source, storageClass: 'STANDARD' },
        { role: 'secondary', store: target, storageClass: 'STANDARD' },
      ],
      rules: () => ({ daily: 7, monthly: 0, yearly: 0, minKeep: 1, debrisGrace: 0 }),
      now: new Date(),
      logger: silentLogger,
    });
    expect(synced).toMatchObject([
      {
        backupId: manifest.id,
        status: 'failed',
        reason: expect.stringMatching(/does not match its manifest/),
      },
    ]);
    expect(filesUnder(join(work, 'flipped-target'))).toEqual([]);
  });
});

describe('pgbp dump and pgbp sync with two stores', () => {
  it('reports a dump with S3 down as degraded, and sync copies it once S3 is back', async () => {
    const bucket = await createBucket();
    const nas = join(work, 'cli-nas');
    const file = join(work, 'two-stores.yml');
    writeFileSync(
      file,
      [
        'stage: local',
        'stores:',
        `  primary: { url: "file://${nas}" }`,
        `  secondary: { url: "s3://${bucket}/backups" }`,
        'dump: { threads: 1 }',
      ].join('\n'),
    );
    const down = { AWS_ENDPOINT_URL: `http://127.0.0.1:${await freePort()}`, AWS_MAX_ATTEMPTS: '1' };

    const dump = await runCli(['dump', '--database', database, '--config', file], { env: down });
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stderr).toMatch(
      new RegExp(
        `DEGRADED: ${database}-\\d{8}T\\d{6}Z not stored in the secondary store s3://${bucket}/backups`,
      ),
    );
    expect(dump.stdout).toMatch(/\(degraded\)$/m);
    expect(await listKeys(bucket)).toEqual([]);

    const status = await runCli(['status', '--config', file, '--json']);
    const shown = JSON.parse(status.stdout) as {
      stores: { role: string; store: string; freeSpace: { freeRatio: number } | null }[];
      lag: { database: string; behind: string | null }[];
    };
    expect(shown.stores.map((s) => [s.role, s.store])).toEqual([
      ['primary', `file://${nas}`],
      ['secondary', `s3://${bucket}/backups`],
    ]);
    expect(shown.stores[0]?.freeSpace?.freeRatio).toBeGreaterThan(0);
    expect(shown.lag.find((l) => l.database === database)).toMatchObject({ behind: 'secondary' });
    const plain = await runCli(['status', '--config', file]);
    expect(plain.stdout).toMatch(
      new RegExp(
        `${database}: the secondary store has no backup \\(the other has \\S+\\): pgbp sync --database ${database}`,
      ),
    );

    const sync = await runCli(['sync', '--database', database, '--config', file]);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sync.stdout).toMatch(/^copied {2}\S+ primary → secondary \(.+, sha256 verified\)$/m);
    const keys = await listKeys(bucket);
    expect(keys.filter((k) => k.endsWith('.manifest.json'))).toHaveLength(1);
    const again = await runCli(['sync', '--database', database, '--config', file]);
    expect(again.stdout.trim()).toBe(`the stores hold the same backups of ${database}`);

    // One flipped byte in the NAS's copy (same size): the restore reads S3's copy and says why.
    const manifestKey = keys.find((k) => k.endsWith('.manifest.json')) as string;
    const dumpKey = manifestKey.replace(/\.manifest\.json$/, '.dump').slice('backups/'.length);
    const onNas = join(nas, dumpKey);
    const bytes = readFileSync(onNas);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] as number) ^ 0x01;
    writeFileSync(onNas, bytes);
    const target = uniqueDbName('two_stores_restored');
    restored.push(target);
    const restore = await runCli([
      'restore',
      'latest',
      '--database',
      database,
      '--target-db',
      target,
      '--config',
      file,
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stderr).toMatch(
      new RegExp(
        `read the secondary store's copy \\(s3://${bucket}/backups\\): the primary copy was damaged: .*SHA-256`,
        'i',
      ),
    );
    expect(await withClient(target, (c) => c.query('select count(*)::int as n from blobs'))).toMatchObject({
      rows: [{ n: 1500 }],
    });

    const forced = await runCli([
      'restore',
      'latest',
      '--database',
      database,
      '--target-db',
      `${target}_x`,
      '--config',
      file,
      '--from',
      'primary',
    ]);
    expect(forced.code).toBe(1);
    expect(forced.stderr).toMatch(/CorruptBackupError/);
  });
});
