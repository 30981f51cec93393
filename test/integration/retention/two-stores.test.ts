import { describe, expect, it } from 'vitest';
import { createApplyRetentionHandler } from '../../../functions/apply-retention.js';
import { listBackups } from '../../../lib/catalog/backups.js';
import { parseConfig, storeRetention } from '../../../lib/config.js';
import { fixedClock } from '../../../lib/platform/clock.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import type { RetentionReport } from '../../../lib/retention/run.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { syncStores } from '../../../lib/sync/sync.js';
import { dailyDates, putBackup, withTempDir } from '../../support/manifests.js';
import { eachLimit, inboxAlerter } from '../../support/pipeline.js';
import { createBucket } from '../../support/s3.js';

describe('retention with a primary and a secondary store', () => {
  it('keeps 7 daily backups on the NAS and the GFS tiers in S3, and sync sends the NAS none of the older ones', async () => {
    await withTempDir(async (dir) => {
      const bucket = await createBucket();
      const config = parseConfig(
        {
          stage: 'local',
          stores: {
            primary: { url: `file://${dir}`, retention: { daily: 7, monthly: 0, yearly: 0 } },
            secondary: { url: `s3://${bucket}/backups` },
          },
          databases: [{ name: 'app' }],
        },
        'test',
      );
      const nas = new FileStore(dir);
      const s3 = new S3Store(bucket, 'backups');
      const dates = [
        new Date('2025-12-01T02:00:00Z'),
        new Date('2026-01-01T02:00:00Z'),
        ...dailyDates('2026-02-10', '2026-03-01'),
      ];
      await eachLimit(dates, 4, async (at) => {
        await putBackup(nas, 'app', at);
        await putBackup(s3, 'app', at);
      });
      const now = new Date('2026-03-01T03:00:00Z');
      const apply = createApplyRetentionHandler({
        store: nas,
        secondary: s3,
        config,
        alerter: inboxAlerter(),
        clock: fixedClock(now),
        logger: silentLogger,
      });

      const result = (await apply({ database: 'app' })) as { databases: RetentionReport[] };

      expect(result.databases.map((r) => [r.role, r.kept.length])).toEqual([
        ['primary', 7],
        ['secondary', 10],
      ]);
      const onNas = (await listBackups(nas, 'app')).map((b) => b.manifest.createdAt.slice(0, 10));
      expect(onNas).toEqual(
        dailyDates('2026-02-23', '2026-03-01')
          .map((d) => d.toISOString().slice(0, 10))
          .reverse(),
      );
      const inS3 = (await listBackups(s3, 'app')).map((b) => b.manifest.createdAt.slice(0, 10));
      expect(inS3.slice(-3)).toEqual(['2026-02-10', '2026-01-01', '2025-12-01']);
      expect(inS3).toHaveLength(10);

      // S3's older monthly and yearly backups are not the NAS's to keep: sync leaves them there.
      const synced = await syncStores({
        stores: [
          { role: 'primary', store: nas, storageClass: 'STANDARD' },
          { role: 'secondary', store: s3, storageClass: 'STANDARD' },
        ],
        database: 'app',
        rules: (role, database) => storeRetention(config, role, database),
        now,
        logger: silentLogger,
      });
      expect(synced.map((s) => [s.to, s.status])).toEqual([
        ['primary', 'skipped'],
        ['primary', 'skipped'],
        ['primary', 'skipped'],
      ]);
      expect(await listBackups(nas, 'app')).toHaveLength(7);
    });
  });

  it('applies the NAS retention when S3 cannot be read, and alerts that S3 retention did not run', async () => {
    await withTempDir(async (dir) => {
      const config = parseConfig(
        {
          stage: 'local',
          stores: {
            primary: { url: `file://${dir}/nas`, retention: { daily: 2, monthly: 0, yearly: 0, minKeep: 1 } },
            secondary: { url: 's3://pgbp-no-such-bucket/backups' },
          },
          databases: [{ name: 'app' }],
        },
        'test',
      );
      const nas = new FileStore(`${dir}/nas`);
      await eachLimit(dailyDates('2026-02-25', '2026-03-01'), 2, (at) => putBackup(nas, 'app', at));
      const alerter = inboxAlerter();
      const apply = createApplyRetentionHandler({
        store: nas,
        secondary: new S3Store('pgbp-no-such-bucket', 'backups'),
        config,
        alerter,
        clock: fixedClock(new Date('2026-03-01T03:00:00Z')),
        logger: silentLogger,
      });

      const result = (await apply({})) as { databases: RetentionReport[] };

      expect(result.databases.map((r) => [r.role, r.kept.length])).toEqual([['primary', 2]]);
      expect(await listBackups(nas, 'app')).toHaveLength(2);
      expect(alerter.received.map((a) => [a.kind, a.summary])).toEqual([
        [
          'retention-blocked',
          expect.stringMatching(/the secondary store s3:\/\/pgbp-no-such-bucket\/backups could not be read/),
        ],
      ]);
    });
  });
});
