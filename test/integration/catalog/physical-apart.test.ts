import { describe, expect, it } from 'vitest';
import { listBackups, listStoredDatabases } from '../../../lib/catalog/backups.js';
import { baseBackupKeys, walObjectKey } from '../../../lib/domain/physical-layout.js';
import { parseWalFileName } from '../../../lib/domain/wal-names.js';
import { storeStatus } from '../../../lib/monitor/staleness.js';
import { retentionDatabases, runRetention } from '../../../lib/retention/run.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { putBackup, putDebris, testConfig, withTempDir } from '../../support/manifests.js';

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
});
