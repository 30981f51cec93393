import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listArchiveFiles, listBaseBackups } from '../../../lib/catalog/physical.js';
import { BASE_MANIFEST_VERSION, type BaseManifest } from '../../../lib/domain/base-backup.js';
import { baseBackupKeys, walObjectKey } from '../../../lib/domain/physical-layout.js';
import { parseWalFileName } from '../../../lib/domain/wal-names.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import type { RoleStore } from '../../../lib/storage/store-roles.js';
import { syncPhysical } from '../../../lib/sync/physical.js';
import { WalArchive } from '../../../lib/wal/archive.js';
import { compress } from '../../../lib/wal/codec.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-sync-retention-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const now = new Date('2026-06-01T12:00:00Z');
const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000);
const DAY = 86_400_000;
const segment = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;

/** Stores one WAL file by the archive's layout, dated `at` (the file store dates by mtime). */
async function storeWal(dir: string, name: string, at: Date): Promise<void> {
  const store = new FileStore(dir);
  const original = randomBytes(4096);
  const sha256 = createHash('sha256').update(original).digest('hex');
  const key = walObjectKey(
    '',
    'main',
    parseWalFileName(name) as NonNullable<ReturnType<typeof parseWalFileName>>,
    sha256,
  );
  await store.putBytes(key, await compress(original, 1, process.env));
  utimesSync(join(dir, key), at, at);
}

/** A base backup (its tar and its manifest) that ended `at`, needing the WAL of `startWal` only. */
async function storeBase(dir: string, id: string, startWal: string, at: Date): Promise<void> {
  const store = new FileStore(dir);
  const keys = baseBackupKeys('', 'main', id);
  const tar = randomBytes(10_000);
  await store.putBytes(keys.tar('base'), tar);
  const manifest: BaseManifest = {
    manifestVersion: BASE_MANIFEST_VERSION,
    kind: 'base',
    id,
    cluster: 'main',
    systemIdentifier: '7300000000000000001',
    timeline: 1,
    startLsn: '0/A000028',
    stopLsn: '0/A000100',
    startWal,
    stopWal: startWal,
    startTime: at.toISOString(),
    stopTime: at.toISOString(),
    durationMs: 1000,
    serverVersion: '15.8',
    serverMajor: 15,
    walSegmentBytes: 16 * 1024 * 1024,
    key: keys.tar('base'),
    sizeBytes: tar.length,
    originalBytes: tar.length,
    sha256: createHash('sha256').update(tar).digest('hex'),
    compression: { codec: 'zstd', level: 1 },
    tablespaces: ['pg_default', 'pg_global'],
    storageClass: 'STANDARD',
    encryption: { type: 'none' },
    walConfirmedAt: at.toISOString(),
  };
  await store.putBytes(keys.manifest, JSON.stringify(manifest));
}

function roles(primary: string, secondary: string): RoleStore[] {
  return [
    { role: 'primary', store: new FileStore(primary), storageClass: 'STANDARD' },
    { role: 'secondary', store: new FileStore(secondary), storageClass: 'STANDARD' },
  ];
}

describe('syncPhysical: what it sends a store, and what it refuses to', () => {
  it('sends neither WAL nor base backups the target’s retention would delete at once', async () => {
    const nas = mkdtempSync(join(work, 'nas-'));
    const s3 = mkdtempSync(join(work, 's3-'));
    // A month-old base backup and its WAL, then last week's base backup and the WAL since.
    await storeWal(s3, segment(1), daysAgo(30));
    await storeWal(s3, segment(2), daysAgo(30));
    await storeBase(s3, '20260502T120000Z', segment(1), daysAgo(30));
    await storeWal(s3, segment(10), daysAgo(20));
    await storeBase(s3, '20260512T120000Z', segment(10), daysAgo(20));
    await storeWal(s3, segment(11), daysAgo(6));
    await storeBase(s3, '20260526T120000Z', segment(11), daysAgo(6));
    await storeWal(s3, segment(12), daysAgo(1));

    const results = await syncPhysical({
      stores: roles(nas, s3),
      windows: () => ({ walMs: 7 * DAY, pitrMs: 7 * DAY }),
      now,
      logger: silentLogger,
      env: process.env,
    });
    expect(results.map((r) => [r.kind, r.name, r.from, r.to, r.status]).sort()).toEqual(
      [
        ['segment', segment(1), 'secondary', 'primary', 'skipped'],
        ['segment', segment(2), 'secondary', 'primary', 'skipped'],
        ['segment', segment(10), 'secondary', 'primary', 'copied'],
        ['segment', segment(11), 'secondary', 'primary', 'copied'],
        ['segment', segment(12), 'secondary', 'primary', 'copied'],
        ['base', '20260502T120000Z', 'secondary', 'primary', 'skipped'],
        // The newest base backup that ended before the window: its first second starts from it.
        ['base', '20260512T120000Z', 'secondary', 'primary', 'copied'],
        ['base', '20260526T120000Z', 'secondary', 'primary', 'copied'],
      ].sort(),
    );
    expect(results.find((r) => r.name === segment(1))?.reason).toBe(
      "the primary store's retention of the physical archive would remove it at once",
    );
    const nasStore = new FileStore(nas);
    expect((await listArchiveFiles(nasStore, 'main')).map((f) => f.name)).toEqual([
      segment(10),
      segment(11),
      segment(12),
    ]);
    expect((await listBaseBackups(nasStore, 'main')).bases.map((b) => b.id)).toEqual([
      '20260526T120000Z',
      '20260512T120000Z',
    ]);
  });

  it('copies no base backup whose WAL the target lacks, and writes no manifest for it', async () => {
    const nas = mkdtempSync(join(work, 'nas-'));
    const s3 = mkdtempSync(join(work, 's3-'));
    await storeBase(s3, '20260526T120000Z', segment(11), daysAgo(6));
    const [result, ...rest] = await syncPhysical({
      stores: roles(nas, s3),
      windows: () => ({ walMs: 7 * DAY, pitrMs: 7 * DAY }),
      now,
      logger: silentLogger,
      env: process.env,
    });
    expect(rest).toEqual([]);
    expect(result).toMatchObject({
      kind: 'base',
      status: 'failed',
      reason: `the primary store lacks 1 WAL segment(s) it needs (${segment(11)}): not copied`,
    });
    expect((await listBaseBackups(new FileStore(nas), 'main')).bases).toEqual([]);
  });

  it('mixes no two clusters’ WAL: archives of one name with different system identifiers are a conflict', async () => {
    const nas = mkdtempSync(join(work, 'nas-'));
    const s3 = mkdtempSync(join(work, 's3-'));
    for (const [dir, systemIdentifier] of [
      [nas, '7300000000000000001'],
      [s3, '7300000000000000002'],
    ] as const) {
      await new WalArchive(new FileStore(dir), 'main').claim({
        systemIdentifier,
        createdAt: now.toISOString(),
      });
    }
    await storeWal(nas, segment(1), daysAgo(1));
    await storeWal(s3, segment(2), daysAgo(1));
    const results = await syncPhysical({
      stores: roles(nas, s3),
      windows: () => ({ walMs: 7 * DAY, pitrMs: 7 * DAY }),
      now,
      logger: silentLogger,
      env: process.env,
    });
    expect(results).toEqual([
      expect.objectContaining({
        kind: 'archive',
        status: 'conflict',
        reason: expect.stringMatching(
          /system 7300000000000000001.*of 7300000000000000002: nothing copied either way/,
        ),
      }),
    ]);
    expect((await listArchiveFiles(new FileStore(nas), 'main')).map((f) => f.name)).toEqual([segment(1)]);
    expect((await listArchiveFiles(new FileStore(s3), 'main')).map((f) => f.name)).toEqual([segment(2)]);
  });
});
