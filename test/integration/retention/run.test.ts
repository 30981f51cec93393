import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanDatabase } from '../../../lib/catalog/backups.js';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import { runRetention } from '../../../lib/retention/run.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import {
  ageFile,
  dailyDates,
  putBackup,
  putDebris,
  testConfig,
  withTempDir,
} from '../../support/manifests.js';

const HOUR = 3_600_000;

async function allKeys(store: BackupStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list('')) keys.push(o.key);
  return keys.sort();
}

describe('runRetention on a directory store', () => {
  it('returns the same plan in a dry run as in the real run, and only the real run deletes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 0, max: 800 }), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: -2, max: 40 }),
        fc.array(fc.integer({ min: 0, max: 72 }), { maxLength: 3 }),
        async (daysAgo, newestHoursAgo, debrisHoursAgo) => {
          await withTempDir(async (dir) => {
            const store = new FileStore(dir);
            const now = new Date('2026-03-02T12:00:00Z');
            const newest = now.getTime() - newestHoursAgo * HOUR;
            for (const d of daysAgo)
              await putBackup(store, 'app', new Date(newest - d * 24 * HOUR), { verify: d % 3 === 0 });
            for (const [i, h] of debrisHoursAgo.entries()) {
              const key = await putDebris(store, 'app', new Date(Date.UTC(2020, 0, 1, 0, 0, i)));
              await ageFile(store, key, new Date(now.getTime() - h * HOUR));
            }
            const config = testConfig({ databases: [{ name: 'app', retention: { minKeep: 2 } }] });
            const before = await allKeys(store);
            const dry = await runRetention({ store, config, database: 'app', now, dryRun: true });
            expect(await allKeys(store)).toEqual(before);
            expect(dry.deletedKeys).toEqual([]);
            const real = await runRetention({ store, config, database: 'app', now });
            const { dryRun: _a, deletedKeys: _b, ...dryPlan } = dry;
            const { dryRun: _c, deletedKeys, ...realPlan } = real;
            expect(realPlan).toEqual(dryPlan);
            const planned = [...real.remove.flatMap((b) => b.keys), ...real.debris.remove].sort();
            expect([...deletedKeys].sort()).toEqual(planned);
            const after = await scanDatabase(store, 'app');
            expect(after.backups.map((b) => b.manifest.id).sort()).toEqual(real.kept.map((k) => k.id).sort());
            expect(after.debris.map((d) => d.key).sort()).toEqual(real.debris.kept.map((d) => d.key).sort());
            expect(await allKeys(store)).toEqual(before.filter((k) => !deletedKeys.includes(k)));
          });
        },
      ),
      { numRuns: 25 },
    );
  });

  it('leaves a backup whose dump could not be deleted as debris, never as a manifest without its dump', async () => {
    await withTempDir(async (dir) => {
      const files = new FileStore(dir);
      // The store refuses to delete dumps (as S3 would with a deny policy): manifests go first.
      const store: BackupStore = Object.assign(Object.create(files) as FileStore, {
        async deleteMany(keys: readonly string[]) {
          const dumps = keys.filter((k) => k.endsWith('.dump'));
          const result = await files.deleteMany(keys.filter((k) => !k.endsWith('.dump')));
          return {
            deleted: result.deleted,
            failed: [
              ...result.failed,
              ...dumps.map((key) => ({ key, code: 'AccessDenied', message: 'denied' })),
            ],
          };
        },
      });
      const dates = dailyDates('2026-02-01', '2026-02-20');
      for (const d of dates) await putBackup(store, 'app', d);
      const now = new Date('2026-02-20T03:00:00Z');
      const config = testConfig({
        databases: [{ name: 'app', retention: { daily: 3, monthly: 1, yearly: 1 } }],
      });
      const report = await runRetention({ store, config, database: 'app', now });
      expect(report.remove.length).toBeGreaterThan(0);
      expect(report.failed.map((f) => f.key)).toEqual(report.remove.map((b) => keysFor('', b.id).dump));
      const scan = await scanDatabase(files, 'app');
      expect(scan.broken).toEqual([]);
      expect(scan.backups.map((b) => b.manifest.id)).toEqual(report.kept.map((k) => k.id));
      expect(scan.debris.map((d) => d.key).sort()).toEqual(
        report.remove.map((b) => keysFor('', b.id).dump).sort(),
      );
    });
  });

  it('removes a verify report left without its backup once past the grace period, a young one not', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      const now = new Date('2026-02-20T03:00:00Z');
      for (const d of dailyDates('2026-02-15', '2026-02-20')) await putBackup(store, 'app', d);
      // Reports of backups that are gone: one written two days ago, one an hour ago.
      const old = keysFor('', 'app-20260210T020000Z').verify;
      const young = keysFor('', 'app-20260211T020000Z').verify;
      for (const key of [old, young]) await store.putBytes(key, '{"passed":true}');
      await ageFile(store, old, new Date(now.getTime() - 48 * HOUR));
      await ageFile(store, young, new Date(now.getTime() - HOUR));
      const config = testConfig({ databases: [{ name: 'app' }] });

      const report = await runRetention({ store, config, database: 'app', now });
      expect(report.debris.remove).toEqual([old]);
      expect(report.debris.kept).toEqual([{ key: young, reason: 'grace' }]);
      const keys = await allKeys(store);
      expect(keys).not.toContain(old);
      expect(keys).toContain(young);
      expect(report.kept).toHaveLength(6);
    });
  });

  it('repairs a missing tier tag on kept monthly and yearly dumps, and only reports it in a dry run', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      const yearly = await putBackup(store, 'app', new Date('2026-01-01T02:00:00Z'), { tag: false });
      const monthly = await putBackup(store, 'app', new Date('2026-02-01T02:00:00Z'), { tag: false });
      const daily = await putBackup(store, 'app', new Date('2026-02-02T02:00:00Z'), { tag: false });
      const config = testConfig({ databases: [{ name: 'app' }] });
      const now = new Date('2026-02-02T05:00:00Z');
      const dry = await runRetention({ store, config, database: 'app', now, dryRun: true });
      expect(dry.tagRepairs.map((t) => [t.id, t.tier])).toEqual([
        [monthly.id, 'monthly'],
        [yearly.id, 'yearly'],
      ]);
      expect(await store.getTags(monthly.key)).toEqual({});
      await runRetention({ store, config, database: 'app', now });
      expect(await store.getTags(monthly.key)).toEqual({ tier: 'monthly' });
      expect(await store.getTags(yearly.key)).toEqual({ tier: 'yearly' });
      expect(await store.getTags(daily.key)).toEqual({});
      const again = await runRetention({ store, config, database: 'app', now });
      expect(again.tagRepairs).toEqual([]);
    });
  });

  it('reports broken manifests and never deletes them', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      for (const d of dailyDates('2026-01-10', '2026-02-20')) await putBackup(store, 'app', d);
      const keys = keysFor('', 'app-20260112T020000Z');
      await store.putBytes(keys.dump, 'not the size the manifest says', { replace: true });
      const report = await runRetention({
        store,
        config: testConfig({ databases: [{ name: 'app' }] }),
        database: 'app',
        now: new Date('2026-02-20T04:00:00Z'),
      });
      expect(report.broken).toEqual([expect.objectContaining({ key: keys.manifest })]);
      expect(report.deletedKeys).not.toContain(keys.manifest);
      expect(await store.head(keys.manifest)).toBeDefined();
      expect(await store.head(keys.dump)).toBeDefined();
    });
  });
});
