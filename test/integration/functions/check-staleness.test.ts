import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCheckStalenessHandler, handler } from '../../../functions/check-staleness.js';
import { fixedClock } from '../../../lib/platform/clock.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { emfSink } from '../../../lib/platform/metrics.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { putBackup, testConfig, withTempDir } from '../../support/manifests.js';
import {
  createTopic,
  inboxAlerter,
  startServer,
  subscribeHttp,
  writeConfigFile,
} from '../../support/pipeline.js';
import { createBucket } from '../../support/s3.js';

const HOUR = 3_600_000;

function metricLines() {
  const lines: Record<string, unknown>[] = [];
  return { lines, sink: emfSink((line) => lines.push(JSON.parse(line) as Record<string, unknown>)) };
}

describe('check-staleness against S3 (moto)', () => {
  afterEach(() => {
    delete process.env.PGBP_CONFIG;
    delete process.env.PGBP_ALERTS_TOPIC_ARN;
  });

  it('alerts on a stale database and on a configured one that never had a backup, and reports every age', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, 'backups');
    const now = new Date();
    await putBackup(store, 'fresh', new Date(now.getTime() - 26 * HOUR));
    await putBackup(store, 'fresh', new Date(now.getTime() - 2 * HOUR));
    await putBackup(store, 'stale', new Date(now.getTime() - 30 * HOUR), { verify: true });
    await putBackup(store, 'retired', new Date(now.getTime() - 400 * 24 * HOUR));
    const alerter = inboxAlerter();
    const metrics = metricLines();
    const check = createCheckStalenessHandler({
      store,
      config: testConfig({
        stage: 'dev',
        store: `s3://${bucket}/backups`,
        databases: [{ name: 'fresh' }, { name: 'stale' }, { name: 'never' }],
      }),
      alerter,
      clock: fixedClock(now),
      metrics: metrics.sink,
      logger: silentLogger,
    });
    const result = await check({});

    expect(alerter.received.map((a) => [a.kind, a.severity, a.database])).toEqual([
      ['backup-stale', 'critical', 'stale'],
      ['backup-stale', 'critical', 'never'],
    ]);
    expect(alerter.received[0]?.summary).toContain('taken 30 h ago');
    expect(alerter.received[1]?.summary).toBe('No good backup of never exists (threshold 24 h).');
    expect(result.anyStale).toBe(true);
    expect(result.databases.map((d) => [d.database, d.stale])).toEqual([
      ['fresh', false],
      ['stale', true],
      ['never', true],
    ]);
    expect(metrics.lines).toEqual([
      {
        _aws: {
          Timestamp: now.getTime(),
          CloudWatchMetrics: [
            {
              Namespace: 'PgBackupPipeline',
              Dimensions: [['Stage', 'Database']],
              Metrics: [{ Name: 'BackupAgeHours', Unit: 'None' }],
            },
          ],
        },
        Stage: 'dev',
        Database: 'fresh',
        BackupAgeHours: 2,
      },
      expect.objectContaining({ Database: 'stale', BackupAgeHours: 30 }),
    ]);
  });

  it('alerts through the SNS topic and prints the metric on stdout when deployed', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, '');
    await putBackup(store, 'app', new Date(Date.now() - 50 * HOUR));
    const topic = await createTopic('alerts');
    const inbox = await startServer();
    await subscribeHttp(topic, `${inbox.url}/sns`);
    const write = vi.spyOn(process.stdout, 'write');
    try {
      await withTempDir(async (dir) => {
        process.env.PGBP_CONFIG = await writeConfigFile(dir, {
          stage: 'staging',
          mode: 'aws',
          store: `s3://${bucket}`,
          databases: [{ name: 'app' }],
          alerts: { console: false },
        });
        process.env.PGBP_ALERTS_TOPIC_ARN = topic;
        await handler({ source: 'aws.scheduler' });
      });
      const [notification] = await inbox.waitFor(1);
      const body = JSON.parse(notification?.body ?? '{}') as { Subject: string; Message: string };
      expect(body.Subject).toBe('[CRITICAL] Backup stale: app');
      expect(body.Message).toContain('The newest good backup of app is app-');
      const emf = write.mock.calls
        .map(([chunk]) => String(chunk))
        .filter((line) => line.includes('"_aws"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(emf).toEqual([
        expect.objectContaining({ Stage: 'staging', Database: 'app', BackupAgeHours: expect.any(Number) }),
      ]);
      expect(emf[0]?.BackupAgeHours as number).toBeGreaterThanOrEqual(50);
    } finally {
      write.mockRestore();
      await inbox.close();
    }
  });

  it('reports free space of a directory store and alerts below the floor', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      const now = new Date();
      await putBackup(store, 'app', new Date(now.getTime() - HOUR));
      const alerter = inboxAlerter();
      const metrics = metricLines();
      const check = createCheckStalenessHandler({
        store,
        // Nothing has 100 % free: the floor is always crossed.
        config: testConfig({
          store: `file://${dir}`,
          databases: [{ name: 'app' }],
          defaults: { minFreeSpaceRatio: 1 },
        }),
        alerter,
        clock: fixedClock(now),
        metrics: metrics.sink,
        logger: silentLogger,
      });
      const result = await check({});
      expect(result.freeSpace?.low).toBe(true);
      expect(alerter.received.map((a) => a.kind)).toEqual(['low-free-space']);
      expect(alerter.received[0]?.summary).toContain(`file://${dir} has`);
      expect(metrics.lines[1]).toMatchObject({
        Store: `file://${dir}`,
        FreeSpacePercent: expect.any(Number),
      });
    });
  });
});
