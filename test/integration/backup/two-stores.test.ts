import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
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
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { freePort } from '../../support/ports.js';
import { createBucket, inProgressUploads, listKeys } from '../../support/s3.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-two-stores-'));
const config = parseConfig({ stage: 'local', store: 'file:///unused' }, 'test');
let database: string;
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
      [manifest.key, manifest.key.replace(/\.dump$/, '.manifest.json')].sort(),
    );
    expect(await inProgressUploads(bucket)).toBe(0);
  });
});
