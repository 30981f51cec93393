import { describe, expect, it } from 'vitest';
import { createCheckSizeHandler } from '../../../functions/check-size.js';
import type { Config } from '../../../lib/config.js';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import { BackupNotFoundError, CorruptBackupError, SizeOutOfRangeError } from '../../../lib/domain/errors.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { dailyDates, putBackup, testConfig } from '../../support/manifests.js';
import { rejection } from '../../support/pipeline.js';
import { createBucket } from '../../support/s3.js';

const KIB = 1024;

async function setup(config: (bucket: string) => Config) {
  const bucket = await createBucket();
  const store = new S3Store(bucket, 'backups');
  const check = createCheckSizeHandler({ store, config: config(bucket), logger: silentLogger });
  return { store, check };
}

describe('check-size against S3 (moto)', () => {
  it('answers with a warning, its reason and numbers, when a backup is 40 % of the recent baseline', async () => {
    const { store, check } = await setup((b) => testConfig({ store: `s3://${b}/backups` }));
    for (const [i, d] of dailyDates('2026-06-12', '2026-06-19').entries()) {
      await putBackup(store, 'app', d, { size: (100 + (i % 3)) * KIB });
    }
    const small = await putBackup(store, 'app', new Date('2026-06-20T02:00:00Z'), { size: 40 * KIB });
    const verdict = await check({ database: 'app', backupId: small.id });
    expect(verdict).toMatchObject({
      status: 'warning',
      sizeBytes: 40 * KIB,
      baseline: { count: 7, medianBytes: 101 * KIB },
    });
    expect(verdict.reasons).toEqual([
      'the dump is 40.0 KiB, 40 % of the median of the last 7 good backups (101.0 KiB); below the 50 % warning line',
    ]);
  });

  it('fails an empty dump with SizeOutOfRangeError, for the state machine to catch', async () => {
    const { store, check } = await setup((b) => testConfig({ store: `s3://${b}/backups` }));
    await putBackup(store, 'app', new Date('2026-06-19T02:00:00Z'), { size: 100 * KIB });
    const empty = await putBackup(store, 'app', new Date('2026-06-20T02:00:00Z'), { size: 0 });
    const failure = await rejection(check({ database: 'app', backupId: empty.id }));
    expect(failure).toBeInstanceOf(SizeOutOfRangeError);
    expect(failure.name).toBe('SizeOutOfRangeError');
    expect(failure.message).toBe(
      `backup ${empty.id} of app: the dump is 0 B, at or below 2.0 KiB: empty or near-empty; the dump is 0 B, 0 % of the median of the last 1 good backup (100.0 KiB); below the 50 % warning line`,
    );
  });

  it('judges a database with no history by its absolute range only', async () => {
    const { store, check } = await setup((b) =>
      testConfig({ store: `s3://${b}/backups`, databases: [{ name: 'app', size: { minBytes: '64 KiB' } }] }),
    );
    const first = await putBackup(store, 'app', new Date('2026-06-19T02:00:00Z'), { size: 80 * KIB });
    expect(await check({ database: 'app', backupId: first.id })).toMatchObject({
      status: 'ok',
      baseline: null,
    });
    const other = await putBackup(store, 'other', new Date('2026-06-19T02:00:00Z'), { size: 10 * KIB });
    expect(await check({ database: 'other', backupId: other.id })).toMatchObject({
      status: 'ok',
      baseline: null,
    });
    const small = await putBackup(store, 'app', new Date('2026-06-20T02:00:00Z'), { size: 32 * KIB });
    await expect(check({ database: 'app', backupId: small.id })).rejects.toThrow(
      'the dump is 32.0 KiB, below the configured minimum of 64.0 KiB',
    );
  });

  it('refuses to judge a backup that is missing or whose dump disagrees with its manifest', async () => {
    const { store, check } = await setup((b) => testConfig({ store: `s3://${b}/backups` }));
    await expect(check({ database: 'app', backupId: 'app-20260620T020000Z' })).rejects.toBeInstanceOf(
      BackupNotFoundError,
    );
    const m = await putBackup(store, 'app', new Date('2026-06-20T02:00:00Z'), { size: 10 * KIB });
    await store.deleteMany([keysFor('backups', m.id).dump]);
    await store.putBytes(keysFor('backups', m.id).dump, 'short');
    await expect(check({ database: 'app', backupId: m.id })).rejects.toBeInstanceOf(CorruptBackupError);
  });
});
