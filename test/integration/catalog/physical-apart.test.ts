import { describe, expect, it } from 'vitest';
import { listBackups, listStoredDatabases } from '../../../lib/catalog/backups.js';
import { baseBackupKeys, walObjectKey } from '../../../lib/domain/physical-layout.js';
import { parseWalFileName, segmentName } from '../../../lib/domain/wal-names.js';
import { storeStatus } from '../../../lib/monitor/staleness.js';
import { retentionDatabases, runRetention } from '../../../lib/retention/run.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { putBackup, putDebris, testConfig, withTempDir } from '../../support/manifests.js';
import { eachLimit } from '../../support/pipeline.js';
import { createBucket } from '../../support/s3.js';

describe('the logical catalog beside the physical archive', () => {
  it('never takes ~cluster/ for a database, a backup or debris', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(dir);
      const now = new Date('2026-03-02T12:00:00Z');
      await putBackup(store, 'app', new Date('2026-03-02T02:00:00Z'));
      await putDebris(store, 'app', new Date('2020-01-01T00:00:00Z'));
      const physical = [
        '~cluster/main/archive.json',
        walObjectKey('', 'main', parseWalFileName('000000010000000000000003') as never, 'a'.repeat(64)),
        walObjectKey('', 'main', parseWalFileName('00000002.history') as never, 'b'.repeat(64)),
        baseBackupKeys('', 'main', 'main-20200101T000000Z').tar('base'),
        baseBackupKeys('', 'main', 'main-20200101T000000Z').manifest,
      ];
      for (const key of physical) await store.putBytes(key, '{}');

      expect(await listStoredDatabases(store)).toEqual(['app']);
      expect((await listBackups(store)).map((b) => b.manifest.database)).toEqual(['app']);
      const config = testConfig();
      expect(await retentionDatabases(store, config)).toEqual(['app']);
      const status = await storeStatus({ store, config, now });
      expect(status.databases.map((d) => d.database)).toEqual(['app']);
      const report = await runRetention({ store, config, database: 'app', now });
      expect(report.deletedKeys.some((k) => k.startsWith('~cluster/'))).toBe(false);
      for (const key of physical) expect(await store.head(key), key).toBeDefined();
    });
  });

  it('lists databases and plans retention beside thousands of WAL objects in S3 without paging through them', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, 'backups');
    const now = new Date('2026-03-02T12:00:00Z');
    await putBackup(store, 'app', new Date('2026-03-02T02:00:00Z'));
    await putBackup(store, 'zeta_ledger', new Date('2026-03-02T02:00:00Z'));
    const segments = Array.from({ length: 2500 }, (_, i) => segmentName(1, i + 1));
    await eachLimit(segments, 32, (name) =>
      store.putBytes(walObjectKey('backups', 'main', parseWalFileName(name) as never, 'c'.repeat(64)), 'wal'),
    );
    await store.putBytes('backups/~cluster/main/archive.json', '{}');

    // Every object a listing hands the catalog, counted.
    let listed = 0;
    const counting = new Proxy(store, {
      get(target, property, receiver) {
        if (property !== 'list') return Reflect.get(target, property, receiver);
        return async function* (prefix: string) {
          for await (const o of target.list(prefix)) {
            listed += 1;
            yield o;
          }
        };
      },
    }) as S3Store;

    expect(await listStoredDatabases(counting)).toEqual(['app', 'zeta_ledger']);
    expect(listed).toBeLessThan(1000);
    const config = testConfig({ store: `s3://${bucket}/backups` });
    const status = await storeStatus({ store: counting, config, now });
    expect(status.databases.map((d) => [d.database, d.debris])).toEqual([
      ['app', 0],
      ['zeta_ledger', 0],
    ]);
    listed = 0;
    const reports = [];
    for (const database of await retentionDatabases(counting, config))
      reports.push(await runRetention({ store: counting, config, database, now }));
    expect(reports.map((r) => [r.database, r.debris.remove.length, r.debris.kept.length])).toEqual([
      ['app', 0, 0],
      ['zeta_ledger', 0, 0],
    ]);
    expect(listed).toBeLessThan(1000);
    // And the WAL is all still there.
    let wal = 0;
    for await (const _ of store.list('backups/~cluster/main/wal/')) wal += 1;
    expect(wal).toBe(2500);
  });
});
