import { PassThrough } from 'node:stream';
import { PutObjectRetentionCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { main } from '../../../cli/main.js';
import { createApplyRetentionHandler } from '../../../functions/apply-retention.js';
import { type BaseManifest, baseBackupIdFor } from '../../../lib/domain/base-backup.js';
import { baseBackupKeys, walObjectKey } from '../../../lib/domain/physical-layout.js';
import { historyFileName, parseWalFileName, segmentName } from '../../../lib/domain/wal-names.js';
import { s3Client } from '../../../lib/platform/aws-clients/s3.js';
import { fixedClock } from '../../../lib/platform/clock.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { runPhysicalRetention } from '../../../lib/retention/physical.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { zstdBuffer } from '../../../lib/storage/small-objects.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { keyFile } from '../../support/keys.js';
import { ageFile, testConfig, withTempDir } from '../../support/manifests.js';
import { inboxAlerter, writeConfigFile } from '../../support/pipeline.js';
import { createBucket, listKeys } from '../../support/s3.js';

const DAY = 86_400_000;
const NOW = new Date('2026-12-01T12:00:00Z');
const ago = (days: number, now = NOW) => new Date(now.getTime() - days * DAY);

/**
 * A base backup of the layout: its objects, then its manifest, dated `days` ago; of manifest
 * version 1, which also kept PostgreSQL's backup_manifest apart (retention removes that too).
 */
async function putBase(
  store: BackupStore,
  days: number,
  startSegment: number,
  now = NOW,
): Promise<BaseManifest> {
  const start = ago(days, now);
  const id = baseBackupIdFor(start);
  const keys = baseBackupKeys(store.prefix, 'main', id);
  await store.putBytes(keys.tar('base'), 'tar');
  await store.putBytes(keys.backupManifest, 'manifest');
  const startWal = segmentName(1, startSegment);
  const manifest: BaseManifest = {
    manifestVersion: 1,
    kind: 'base',
    id,
    cluster: 'main',
    systemIdentifier: '7000000000000000001',
    timeline: 1,
    startLsn: `0/${(startSegment * 0x1000000 + 0x28).toString(16).toUpperCase()}`,
    stopLsn: `0/${(startSegment * 0x1000000 + 0x100).toString(16).toUpperCase()}`,
    startWal,
    stopWal: startWal,
    startTime: start.toISOString().replace(/\.\d+Z$/, 'Z'),
    stopTime: new Date(start.getTime() + 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    durationMs: 60_000,
    serverVersion: '15.8',
    serverMajor: 15,
    walSegmentBytes: 16 * 1024 * 1024,
    key: keys.tar('base'),
    sizeBytes: 3,
    originalBytes: 3,
    sha256: 'a'.repeat(64),
    compression: { codec: 'zstd', level: 1 },
    backupManifest: { key: keys.backupManifest, sha256: 'b'.repeat(64), sizeBytes: 8 },
    tablespaces: ['pg_default', 'pg_global'],
    storageClass: 'STANDARD',
    encryption: { type: 'none' },
    walConfirmedAt: new Date(start.getTime() + 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  await store.putBytes(keys.manifest, JSON.stringify(manifest));
  await store.putBytes(keys.drillReport, '{"passed":true}');
  return manifest;
}

/** One WAL file per day for 30 days on timeline 1 (segment n archived 31 - n days ago), and a history file. */
async function putWal(store: FileStore, now = NOW): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  for (let n = 1; n <= 30; n += 1) {
    const name = segmentName(1, n);
    const key = walObjectKey(store.prefix, 'main', parseWalFileName(name) as never, 'c'.repeat(64));
    await store.putBytes(key, await zstdBuffer(Buffer.from(name), 'compress', process.env));
    await ageFile(store, key, ago(31 - n, now));
    keys.set(name, key);
  }
  const history = historyFileName(2);
  const key = walObjectKey(store.prefix, 'main', parseWalFileName(history) as never, 'd'.repeat(64));
  await store.putBytes(
    key,
    await zstdBuffer(Buffer.from('1\t0/1F000000\tno recovery target specified\n'), 'compress', process.env),
  );
  await ageFile(store, key, ago(40, now));
  keys.set(history, key);
  return keys;
}

const HOUR = 3_600_000;

/**
 * What a base backup task killed partway leaves: its tablespaces' objects, no manifest; started
 * `startedHoursAgo` before NOW, its objects last written `writtenHoursAgo` before it.
 */
async function putKilledBase(
  store: BackupStore,
  startedHoursAgo: number,
  writtenHoursAgo: number,
  now = NOW,
): Promise<{ id: string; keys: string[] }> {
  const id = baseBackupIdFor(new Date(now.getTime() - startedHoursAgo * HOUR));
  const keys = baseBackupKeys(store.prefix, 'main', id);
  const written = [keys.tar('16385'), keys.tar('base')];
  for (const key of written) {
    await store.putBytes(key, 'half a tar');
    if (store instanceof FileStore)
      await ageFile(store, key, new Date(now.getTime() - writtenHoursAgo * HOUR));
  }
  return { id, keys: written };
}

async function exists(store: FileStore, key: string): Promise<boolean> {
  return (await store.head(key)) !== undefined;
}

describe('retention of the physical archive', () => {
  it('removes base backups past the window but the newest older one, and the WAL only they needed', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      const wal = await putWal(store);
      const oldest = await putBase(store, 27, 4);
      const anchor = await putBase(store, 20, 11);
      const newest = await putBase(store, 6, 25);
      const config = testConfig({ wal: { retention: '14d' }, pitr: { window: '14d' } });

      const preview = await runPhysicalRetention({ store, config, now: NOW, dryRun: true, env: process.env });
      expect(preview).toMatchObject({
        blocked: null,
        removedBases: [{ id: oldest.id }],
        keptBases: [{ id: newest.id }, { id: anchor.id }],
        keepFrom: { '1': segmentName(1, 11) },
        // Ten segments, and the history file of a timeline never used.
        wal: { removed: 11, kept: 20 },
        deletedKeys: [],
      });
      expect(await exists(store, baseBackupKeys('', 'main', oldest.id).manifest)).toBe(true);

      const applied = await runPhysicalRetention({ store, config, now: NOW, env: process.env });
      expect(applied?.failed).toEqual([]);
      const gone = baseBackupKeys('', 'main', oldest.id);
      for (const key of [gone.manifest, gone.tar('base'), gone.backupManifest, gone.drillReport])
        expect(await exists(store, key), key).toBe(false);
      for (const b of [anchor, newest])
        expect(await exists(store, baseBackupKeys('', 'main', b.id).manifest)).toBe(true);
      for (let n = 1; n <= 30; n += 1) {
        const name = segmentName(1, n);
        expect(await exists(store, wal.get(name) as string), name).toBe(n >= 11);
      }
      // Timeline 2 never got a segment and its history is 40 days old: it is not in use.
      expect(await exists(store, wal.get(historyFileName(2)) as string)).toBe(false);
    });
  });

  it('removes nothing while the archive has no base backup, and never the last one however old', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      const wal = await putWal(store);
      const config = testConfig();
      const none = await runPhysicalRetention({ store, config, now: NOW, env: process.env });
      expect(none?.blocked).toMatch(/no base backup/);
      for (const key of wal.values()) expect(await exists(store, key)).toBe(true);

      const only = await putBase(store, 100, 2);
      const report = await runPhysicalRetention({ store, config, now: NOW, env: process.env });
      expect(report).toMatchObject({ blocked: null, keptBases: [{ id: only.id }], removedBases: [] });
      expect(await exists(store, wal.get(segmentName(1, 1)) as string)).toBe(false);
      expect(await exists(store, wal.get(segmentName(1, 2)) as string)).toBe(true);
    });
  });

  it('runs from pgbp retention beside the logical plan, and pgbp status names a gap in the archive', async () => {
    await withTempDir(async (dir) => {
      // The command reads the system clock: the archive is dated from it.
      const now = new Date();
      const store = new FileStore(`${dir}/store`);
      const wal = await putWal(store, now);
      await putBase(store, 20, 11, now);
      await putBase(store, 6, 25, now);
      // A hole inside what is kept: segments 15 and 16 lost.
      await store.deleteMany([wal.get(segmentName(1, 15)) as string, wal.get(segmentName(1, 16)) as string]);
      const config = await writeConfigFile(dir, { stage: 'local', store: `file://${dir}/store` });
      const pgbp = async (...args: string[]) => {
        const stdout = new PassThrough();
        let out = '';
        stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        const code = await main(args, { env: process.env, cwd: dir, stdout, stderr: new PassThrough() });
        return { code, stdout: out };
      };
      const preview = await pgbp('retention', '--dry-run', '--json', '--config', config);
      expect(preview.code).toBe(0);
      const json = JSON.parse(preview.stdout);
      expect(json.physical).toMatchObject({ cluster: 'main', dryRun: true });
      expect(json.physical.wal.removed).toBe(11);

      const status = await pgbp('status', '--config', config);
      expect(status.stdout).toContain(
        `cluster main: MISSING from the archive on timeline 1: ${segmentName(1, 15)}..${segmentName(1, 16)} (2 segments)`,
      );
      const statusJson = JSON.parse((await pgbp('status', '--json', '--config', config)).stdout);
      expect(statusJson.clusters[0].gaps).toEqual([
        { timeline: 1, from: segmentName(1, 15), to: segmentName(1, 16), missing: 2 },
      ]);
      expect(statusJson.clusters[0].unencrypted).toBe(2);
      expect(statusJson.warnings).toEqual([]);

      // The same archive on a stage that requires encryption: its plaintext base backups are named.
      const required = await writeConfigFile(dir, {
        stage: 'local',
        store: `file://${dir}/store`,
        encryption: { keyFile: await keyFile(), required: true },
      });
      const warned = await pgbp('status', '--config', required);
      expect(warned.stdout).toContain(
        'WARNING cluster main: 2 base backups stored before encryption (plaintext), on a stage that requires encryption',
      );
      const warnedJson = JSON.parse((await pgbp('status', '--json', '--config', required)).stdout);
      expect(warnedJson.warnings).toEqual([
        expect.stringContaining('cluster main: 2 base backups stored before encryption'),
      ]);
    });
  });

  it('runs from the ApplyRetention Lambda after the nightly backup, and not for a run of one database', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      const wal = await putWal(store);
      const oldest = await putBase(store, 27, 4);
      await putBase(store, 20, 11);
      const apply = createApplyRetentionHandler({
        store,
        config: testConfig(),
        alerter: inboxAlerter(),
        clock: fixedClock(NOW),
        logger: silentLogger,
        env: process.env,
      });
      const one = await apply({ database: 'app' });
      expect(one.physical).toBeUndefined();
      expect(await exists(store, baseBackupKeys('', 'main', oldest.id).manifest)).toBe(true);

      const all = await apply({});
      expect(all.physical?.removedBases.map((b) => b.id)).toEqual([oldest.id]);
      expect(await exists(store, baseBackupKeys('', 'main', oldest.id).manifest)).toBe(false);
      expect(await exists(store, wal.get(segmentName(1, 10)) as string)).toBe(false);
      expect(await exists(store, wal.get(segmentName(1, 11)) as string)).toBe(true);
    });
  });

  it('removes what a killed base backup left once it is old enough, and nothing of one that may still run', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      await putWal(store);
      const kept = await putBase(store, 6, 25);
      // Started three days ago, nothing written for two: dead (the default grace is 24 h and a base
      // backup may run 12 h).
      const dead = await putKilledBase(store, 72, 48);
      // Nothing written for 30 h, but started only 33 h ago: it may be a long one still running.
      const young = await putKilledBase(store, 33, 30);
      // Started 40 h ago and written to an hour ago (sync copying it, or a slow last tablespace).
      const busy = await putKilledBase(store, 40, 1);
      // Not of the layout: not ours to judge.
      const stranger = 'main-notes.txt';
      await store.putBytes(`~cluster/main/base/${stranger}`, 'x');
      await ageFile(store, `~cluster/main/base/${stranger}`, ago(30));
      const config = testConfig();

      const preview = await runPhysicalRetention({ store, config, now: NOW, dryRun: true, env: process.env });
      expect(preview?.debris).toEqual({
        removed: [{ id: dead.id, objects: 2 }],
        // Oldest first.
        kept: [
          { id: busy.id, reason: 'grace' },
          { id: young.id, reason: 'grace' },
        ],
      });
      for (const key of dead.keys) expect(await exists(store, key), key).toBe(true);

      const applied = await runPhysicalRetention({ store, config, now: NOW, env: process.env });
      expect(applied?.failed).toEqual([]);
      expect(applied?.deletedKeys).toEqual(expect.arrayContaining(dead.keys));
      for (const key of dead.keys) expect(await exists(store, key), key).toBe(false);
      for (const key of [...young.keys, ...busy.keys, `~cluster/main/base/${stranger}`])
        expect(await exists(store, key), key).toBe(true);
      const complete = baseBackupKeys('', 'main', kept.id);
      for (const key of [complete.manifest, complete.tar('base'), complete.drillReport])
        expect(await exists(store, key), key).toBe(true);
    });
  });

  it('keeps a killed base backup while retention is blocked by a manifest it cannot read', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      await putWal(store);
      await putBase(store, 6, 25);
      const dead = await putKilledBase(store, 72, 48);
      const unreadable = baseBackupKeys('', 'main', baseBackupIdFor(ago(4))).manifest;
      await store.putBytes(unreadable, '{"manifestVersion": 2, "kind"');
      const report = await runPhysicalRetention({ store, config: testConfig(), now: NOW, env: process.env });
      expect(report?.blocked).toMatch(/cannot be read/);
      expect(report?.debris).toEqual({ removed: [], kept: [{ id: dead.id, reason: 'stale-block' }] });
      for (const key of dead.keys) expect(await exists(store, key), key).toBe(true);
    });
  });

  it('keeps what a killed base backup left in S3 while an object of it is under Object Lock', async () => {
    const bucket = await createBucket({ objectLock: true });
    const store = new S3Store(bucket, '');
    // S3 stamps objects with the real time: the clock stands three days ahead of it.
    const now = new Date(Date.now() + 72 * HOUR);
    await putBase(store, 1, 25, now);
    const locked = await putKilledBase(store, 80, 72, now);
    const dead = await putKilledBase(store, 90, 72, now);
    const retainUntil = new Date(now.getTime() + 24 * HOUR);
    await s3Client().send(
      new PutObjectRetentionCommand({
        Bucket: bucket,
        Key: locked.keys[1],
        Retention: { Mode: 'GOVERNANCE', RetainUntilDate: retainUntil },
      }),
    );
    const report = await runPhysicalRetention({ store, config: testConfig(), now, env: process.env });
    expect(report?.debris).toEqual({
      removed: [{ id: dead.id, objects: 2 }],
      kept: [{ id: locked.id, reason: 'object-lock', lockedKey: locked.keys[1] }],
    });
    expect(report?.failed).toEqual([]);
    const left = await listKeys(bucket);
    for (const key of locked.keys) expect(left).toContain(key);
    for (const key of dead.keys) expect(left).not.toContain(key);
  });
});
