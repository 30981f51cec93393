import { PutObjectLegalHoldCommand, PutObjectRetentionCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { createApplyRetentionHandler, handler } from '../../../functions/apply-retention.js';
import { backupIdFor, classifyTier, keysFor } from '../../../lib/domain/backup-layout.js';
import { s3Client } from '../../../lib/platform/aws-clients/s3.js';
import { fixedClock } from '../../../lib/platform/clock.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import type { RetentionReport } from '../../../lib/retention/run.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { dailyDates, putBackup, putDebris, testConfig, withTempDir } from '../../support/manifests.js';
import { eachLimit, inboxAlerter, writeConfigFile } from '../../support/pipeline.js';
import { createBucket, listKeys } from '../../support/s3.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface HandlerResult {
  readonly dryRun: boolean;
  readonly databases: readonly RetentionReport[];
}

/** An S3 client that notes the size of every DeleteObjects batch it sends. */
function countingClient(batches: number[]): S3Client {
  const client = new S3Client({ forcePathStyle: true });
  client.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { Delete?: { Objects?: unknown[] } };
      if (input.Delete?.Objects) batches.push(input.Delete.Objects.length);
      return next(args);
    },
    { step: 'initialize', name: 'countDeleteBatches' },
  );
  return client;
}

async function allKeys(bucket: string, prefix = ''): Promise<string[]> {
  const store = new S3Store(bucket, '');
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys.sort();
}

describe('apply-retention against S3 (moto)', () => {
  afterEach(() => {
    delete process.env.PGBP_CONFIG;
  });

  it('pages through 1,140 objects and deletes over 1,000 keys in batches of at most 1,000, keeping the GFS set', async () => {
    const bucket = await createBucket();
    const batches: number[] = [];
    const store = new S3Store(bucket, 'backups', { client: countingClient(batches) });
    // S3 stamps objects with the real time: the clock stands two days ahead, past the debris grace.
    const today = Math.floor(Date.now() / DAY) * DAY;
    const now = new Date(today + 2 * DAY + 3 * HOUR);
    const dates = Array.from({ length: 100 }, (_, i) => new Date(today + 2 * DAY + 2 * HOUR - i * DAY));
    const firstOfMonth = dates.find((d) => d.getUTCDate() === 1 && d !== dates[0]);
    await eachLimit(dates, 48, (d) =>
      // One monthly dump lost its tier tag: retention puts it back.
      putBackup(store, 'app', d, { size: 16, verify: dates.indexOf(d) % 10 === 9, tag: d !== firstOfMonth }),
    );
    const debris = Array.from({ length: 930 }, (_, i) => new Date(Date.UTC(2024, 0, 1) + i * 60_000));
    await eachLimit(debris, 48, (d) => putDebris(store, 'app', d, 8));
    const alerter = inboxAlerter();
    const apply = createApplyRetentionHandler({
      store,
      config: testConfig({ store: `s3://${bucket}/backups`, databases: [{ name: 'app' }] }),
      alerter,
      clock: fixedClock(now),
      logger: silentLogger,
    });
    const result = (await apply({})) as HandlerResult;
    const [report] = result.databases;
    if (!report) throw new Error('no report');

    // Newest first, so the last date seen for a month or year is its earliest.
    const earliestOf = (chars: number) =>
      new Map(dates.map((d) => [d.toISOString().slice(0, chars), d])).values();
    const expected = new Set(
      [...dates.slice(0, 7), ...earliestOf(7), ...earliestOf(4)].map((d) => backupIdFor('app', d)),
    );
    expect(new Set(report.kept.map((k) => k.id))).toEqual(expected);
    expect(report.remove).toHaveLength(100 - expected.size);
    expect(report.debris.remove).toHaveLength(930);
    const removedVerify = report.remove.filter((b) => b.keys.length === 3).length;
    const deleted = 2 * report.remove.length + removedVerify + 930;
    expect(deleted).toBeGreaterThan(1000);
    expect(report.deletedKeys).toHaveLength(deleted);
    expect(report.failed).toEqual([]);
    expect(batches.every((n) => n <= 1000)).toBe(true);
    expect(batches.filter((n) => n === 1000)).toHaveLength(1);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(deleted);
    const left = await allKeys(bucket);
    const keptVerify = report.kept.filter(
      (k) => dates.findIndex((d) => backupIdFor('app', d) === k.id) % 10 === 9,
    );
    expect(left).toHaveLength(2 * expected.size + keptVerify.length);
    for (const key of left)
      expect(
        expected.has(
          key
            .split('/')
            .pop()
            ?.replace(/\.(dump|manifest\.json|verify\.json)$/, '') ?? '',
        ),
      ).toBe(true);
    if (!firstOfMonth) throw new Error('no 1st of a month in 100 days');
    const repaired = keysFor('backups', backupIdFor('app', firstOfMonth)).dump;
    expect(report.tagRepairs).toEqual([
      { id: backupIdFor('app', firstOfMonth), key: repaired, tier: classifyTier(firstOfMonth) },
    ]);
    expect(await store.getTags(repaired)).toEqual({ tier: classifyTier(firstOfMonth) });
    expect(alerter.received).toEqual([]);
  });

  it('reports a backup under Object Lock as kept, with its lock, and deletes it not', async () => {
    const bucket = await createBucket({ objectLock: true });
    const store = new S3Store(bucket, '');
    const now = new Date();
    const dates = Array.from({ length: 20 }, (_, i) => new Date(now.getTime() - (i * 24 + 1) * HOUR));
    const manifests = await Promise.all(dates.map((d) => putBackup(store, 'app', d, { size: 16 })));
    const locked = manifests[15];
    const held = manifests[17];
    if (!locked || !held) throw new Error('missing backups');
    const retainUntil = new Date(now.getTime() + 2 * 24 * HOUR);
    await s3Client().send(
      new PutObjectRetentionCommand({
        Bucket: bucket,
        Key: locked.key,
        Retention: { Mode: 'GOVERNANCE', RetainUntilDate: retainUntil },
      }),
    );
    await s3Client().send(
      new PutObjectLegalHoldCommand({
        Bucket: bucket,
        Key: keysFor('', held.id).manifest,
        LegalHold: { Status: 'ON' },
      }),
    );
    const config = testConfig({
      store: `s3://${bucket}`,
      databases: [{ name: 'app', retention: { daily: 7, monthly: 0, yearly: 0 } }],
    });
    const apply = createApplyRetentionHandler({
      store,
      config,
      alerter: inboxAlerter(),
      clock: fixedClock(now),
      logger: silentLogger,
    });
    const [report] = ((await apply({ database: 'app' })) as HandlerResult).databases;
    if (!report) throw new Error('no report');

    const lockedEntry = report.kept.find((k) => k.id === locked.id);
    expect(lockedEntry).toMatchObject({
      reasons: ['object-lock'],
      lock: { key: locked.key, mode: 'GOVERNANCE', retainUntil: retainUntil.toISOString() },
    });
    expect(report.kept.find((k) => k.id === held.id)).toMatchObject({
      reasons: ['object-lock'],
      lock: { key: keysFor('', held.id).manifest, legalHold: true },
    });
    expect(report.kept).toHaveLength(9);
    expect(report.remove).toHaveLength(11);
    const left = await listKeys(bucket);
    expect(left).toContain(locked.key);
    expect(left).toContain(keysFor('', locked.id).manifest);
    expect(left).toContain(keysFor('', held.id).dump);
    for (const b of report.remove) expect(left).not.toContain(keysFor('', b.id).manifest);
  });

  it('previews in a dry run, leaves young debris to its writer, and removes debris past the grace period', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, 'p');
    const written = Date.now();
    // The clock stands 25 hours after the objects were written: debris is past its 24 h grace.
    const later = new Date(written + 25 * HOUR);
    for (let i = 0; i < 10; i += 1)
      await putBackup(store, 'app', new Date(later.getTime() - (i * 24 + 1) * HOUR));
    const debris = await putDebris(store, 'app', new Date(later.getTime() - 3 * HOUR));
    const config = testConfig({
      store: `s3://${bucket}/p`,
      databases: [{ name: 'app', retention: { daily: 3, monthly: 0, yearly: 0, minKeep: 3 } }],
    });
    const before = await allKeys(bucket);

    const dry = createApplyRetentionHandler({
      store,
      config,
      alerter: inboxAlerter(),
      clock: fixedClock(later),
      logger: silentLogger,
    });
    const [preview] = ((await dry({ dryRun: true })) as HandlerResult).databases;
    expect(preview?.dryRun).toBe(true);
    expect(preview?.remove).toHaveLength(7);
    expect(preview?.debris.remove).toEqual([debris]);
    expect(preview?.deletedKeys).toEqual([]);
    expect(await allKeys(bucket)).toEqual(before);

    const early = createApplyRetentionHandler({
      store,
      config,
      alerter: inboxAlerter(),
      clock: fixedClock(new Date(written + HOUR)),
      logger: silentLogger,
    });
    const [first] = ((await early({})) as HandlerResult).databases;
    expect(first?.debris.kept).toEqual([{ key: debris, reason: 'grace' }]);
    expect(await allKeys(bucket)).toContain(debris);

    const [second] = ((await dry({})) as HandlerResult).databases;
    expect(second?.deletedKeys).toContain(debris);
    expect(await allKeys(bucket)).not.toContain(debris);
    expect(await allKeys(bucket)).toHaveLength(6);
  });

  it('deletes nothing and raises a retention-blocked alert when the newest good backup is stale', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, '');
    const now = new Date('2026-05-20T12:00:00Z');
    for (const d of dailyDates('2026-04-01', '2026-05-17')) await putBackup(store, 'app', d, { size: 16 });
    const before = await allKeys(bucket);
    const alerter = inboxAlerter();
    const apply = createApplyRetentionHandler({
      store,
      config: testConfig({ store: `s3://${bucket}`, databases: [{ name: 'app' }] }),
      alerter,
      clock: fixedClock(now),
      logger: silentLogger,
    });
    const [report] = ((await apply({})) as HandlerResult).databases;
    expect(report?.blocked).toMatch(
      /app-20260517T020000Z is 82\.0 h old, over the 24\.0 h staleness threshold/,
    );
    expect(report?.deletedKeys).toEqual([]);
    expect(await allKeys(bucket)).toEqual(before);
    expect(alerter.received).toHaveLength(1);
    expect(alerter.received[0]).toMatchObject({
      kind: 'retention-blocked',
      severity: 'warning',
      database: 'app',
    });
    expect(alerter.received[0]?.summary).toContain('nothing was deleted because the newest good backup');
  });

  it('runs from the deployed config named by PGBP_CONFIG', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, 'backups');
    const now = Date.now();
    for (let i = 0; i < 12; i += 1)
      await putBackup(store, 'app', new Date(now - (i * 24 + 2) * HOUR), { size: 16 });
    await withTempDir(async (dir) => {
      process.env.PGBP_CONFIG = await writeConfigFile(dir, {
        stage: 'dev',
        mode: 'local',
        store: `s3://${bucket}/backups`,
        databases: [{ name: 'app', retention: { daily: 5, monthly: 0, yearly: 0 } }],
        alerts: { console: false },
      });
      const result = (await handler({ dryRun: true })) as HandlerResult;
      expect(result.databases[0]?.kept).toHaveLength(5);
      expect(result.databases[0]?.remove).toHaveLength(7);
    });
    expect(await listKeys(bucket)).toHaveLength(24);
  });
});
