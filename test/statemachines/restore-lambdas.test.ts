import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrepareRestoreHandler } from '../../functions/prepare-restore.js';
import { createThawBackupHandler } from '../../functions/thaw-backup.js';
import { keysFor } from '../../lib/domain/backup-layout.js';
import { silentLogger } from '../../lib/platform/logger.js';
import { FileStore } from '../../lib/storage/file-store.js';
import { S3Store } from '../../lib/storage/s3-store.js';
import type { BackupStore } from '../../lib/storage/store.js';
import { connection } from '../integration/restore/fixture.js';
import { makeManifest } from '../support/manifests.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../support/pg.js';
import { createBucket } from '../support/s3.js';

/** The test server, as Prepare reaches it to ask whether a target exists. */
const server = async (database: string) => ({ ...connection, database });

/** Writes a complete backup (dump, then manifest) the way the dump task leaves one. */
async function storeBackup(store: BackupStore, database: string, at: Date, storageClass = 'STANDARD') {
  const dump = randomBytes(256);
  const manifest = makeManifest(store.prefix, database, at, dump, { storageClass, tables: [] });
  const keys = keysFor(store.prefix, manifest.id);
  // putStream: it honours the storage class (putBytes does not).
  await store.putStream(keys.dump, Readable.from([dump]), { storageClass, tags: { tier: manifest.tier } });
  await store.putBytes(keys.manifest, JSON.stringify(manifest));
  return manifest;
}

const older = new Date('2026-06-01T02:00:00Z');
const newer = new Date('2026-06-20T02:00:00Z');

describe('prepare-restore', () => {
  let dir: string;
  let store: FileStore;
  let prepare: ReturnType<typeof createPrepareRestoreHandler>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbp-prepare-'));
    store = FileStore.fromUrl(`file://${dir}`);
    await storeBackup(store, 'shop', older);
    await storeBackup(store, 'shop', newer);
    prepare = createPrepareRestoreHandler({ store, logger: silentLogger, connection: server });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('refuses a restore with globals of a backup that has none, and carries the choice on for one that has', async () => {
    const request = {
      database: 'shop',
      backup: 'latest',
      targetDatabase: 'shop_restored',
      withGlobals: true,
    };
    await expect(prepare(request)).rejects.toMatchObject({
      name: 'InvalidRestoreRequestError',
      message: expect.stringMatching(/^withGlobals: backup shop-20260620T020000Z has no cluster globals/),
    });
    const other = await storeBackup(store, 'shop', new Date('2026-06-21T02:00:00Z'));
    await store.putBytes(keysFor(store.prefix, other.id).globalsManifest, '{}');
    const prepared = await prepare({ ...request, backup: other.id });
    expect(prepared.request).toMatchObject({ backup: other.id, withGlobals: true });
    await store.deleteMany(Object.values(keysFor(store.prefix, other.id)));
  });

  it('resolves latest to the newest backup and pins the request to its id', async () => {
    const prepared = await prepare({
      database: 'shop',
      backup: 'latest',
      targetDatabase: 'shop_restored',
      schemas: ['core'],
    });
    expect(prepared).toEqual({
      request: {
        mode: 'restore',
        database: 'shop',
        backup: 'shop-20260620T020000Z',
        targetDatabase: 'shop_restored',
        schemas: ['core'],
        replace: false,
        withGlobals: false,
      },
      backupId: 'shop-20260620T020000Z',
      key: keysFor('', 'shop-20260620T020000Z').dump,
      archived: false,
      storageClass: 'STANDARD',
    });
  });

  it('resolves latest before a time to the backup taken before it, and drops the time from the pinned request', async () => {
    const prepared = await prepare({
      database: 'shop',
      backup: 'latest',
      before: '2026-06-10T00:00:00Z',
      targetDatabase: 'shop_june',
    });
    expect(prepared.backupId).toBe('shop-20260601T020000Z');
    expect(prepared.request).not.toHaveProperty('before');
    expect(prepared.request.backup).toBe('shop-20260601T020000Z');
  });

  it('refuses a restore into the source database with InvalidRestoreRequestError naming the field', async () => {
    await expect(
      prepare({ database: 'shop', backup: 'latest', targetDatabase: 'shop' }),
    ).rejects.toMatchObject({
      name: 'InvalidRestoreRequestError',
      message: expect.stringMatching(/^targetDatabase: /),
    });
  });

  it('refuses a schema name with a quote in it', async () => {
    await expect(
      prepare({ database: 'shop', targetDatabase: 'shop_x', schemas: ['core"; drop table x; --'] }),
    ).rejects.toMatchObject({
      name: 'InvalidRestoreRequestError',
      message: expect.stringMatching(/^schemas\[0\]: /),
    });
  });

  it('refuses a target database that exists, unless the request replaces it', async () => {
    const taken = uniqueDbName('prepare_taken');
    await createDatabase(taken);
    try {
      await expect(prepare({ database: 'shop', targetDatabase: taken })).rejects.toMatchObject({
        name: 'InvalidRestoreRequestError',
        message: `targetDatabase: ${taken} already exists; choose a new name, or ask to replace it (--replace)`,
      });
      const replacing = await prepare({ database: 'shop', targetDatabase: taken, replace: true });
      expect(replacing.backupId).toBe('shop-20260620T020000Z');
    } finally {
      await dropDatabase(taken);
    }
  });

  it('fails with BackupNotFoundError when no backup matches', async () => {
    await expect(
      prepare({ database: 'shop', backup: 'shop-20250101T000000Z', targetDatabase: 'shop_x' }),
    ).rejects.toMatchObject({ name: 'BackupNotFoundError' });
    await expect(prepare({ database: 'nothing_here', targetDatabase: 'x' })).rejects.toMatchObject({
      name: 'BackupNotFoundError',
    });
  });
});

describe('prepare-restore and thaw-backup on an archived backup (moto S3)', () => {
  let store: S3Store;
  let backupId: string;

  beforeAll(async () => {
    const bucket = await createBucket();
    store = S3Store.fromUrl(`s3://${bucket}/backups`);
    backupId = (await storeBackup(store, 'ledger', newer, 'DEEP_ARCHIVE')).id;
  });

  it('reports a DEEP_ARCHIVE backup as archived', async () => {
    const prepared = await createPrepareRestoreHandler({ store, logger: silentLogger, connection: server })({
      database: 'ledger',
      targetDatabase: 'ledger_restored',
    });
    expect(prepared).toMatchObject({ backupId, archived: true, storageClass: 'DEEP_ARCHIVE' });
  });

  it('asks S3 to thaw it and reports the state the restore machine polls', async () => {
    const thaw = createThawBackupHandler({
      store,
      policy: { thawTier: 'Bulk', thawDays: 2 },
      logger: silentLogger,
    });
    const first = await thaw({ database: 'ledger', backupId });
    expect(first).toMatchObject({
      backupId,
      storageClass: 'DEEP_ARCHIVE',
      key: keysFor('backups', backupId).dump,
    });
    expect(['requested', 'in-progress', 'available']).toContain(first.state);
    // Asking again is how the machine polls: it never fails because a thaw is already under way.
    const again = await thaw({ database: 'ledger', backupId });
    expect(['in-progress', 'available']).toContain(again.state);
  });

  it('refuses a backup id of another database with InvalidEventError', async () => {
    const thaw = createThawBackupHandler({
      store,
      policy: { thawTier: 'Bulk', thawDays: 2 },
      logger: silentLogger,
    });
    await expect(thaw({ database: 'other', backupId })).rejects.toMatchObject({ name: 'InvalidEventError' });
  });
});

describe('prepare-restore and thaw-backup with a primary and a secondary store (moto S3)', () => {
  let primary: S3Store;
  let secondary: S3Store;
  const policy = { thawTier: 'Bulk', thawDays: 2 } as const;
  const both = () => [
    { role: 'primary' as const, store: primary, storageClass: 'STANDARD' },
    { role: 'secondary' as const, store: secondary, storageClass: 'STANDARD' },
  ];

  beforeAll(async () => {
    primary = S3Store.fromUrl(`s3://${await createBucket()}/backups`);
    secondary = S3Store.fromUrl(`s3://${await createBucket()}/backups`);
  });

  it('resolves latest across both stores: a backup the primary lacks is prepared from the secondary', async () => {
    await storeBackup(primary, 'orders', older);
    await storeBackup(secondary, 'orders', older);
    const degraded = await storeBackup(secondary, 'orders', newer);
    const prepare = createPrepareRestoreHandler({
      store: primary,
      stores: both(),
      logger: silentLogger,
      connection: server,
    });
    expect(await prepare({ database: 'orders', targetDatabase: 'orders_restored' })).toMatchObject({
      backupId: degraded.id,
      archived: false,
      copy: { role: 'secondary', url: secondary.url },
    });
  });

  it('prepares the copy that can be read now, and thaws the nearest one when every copy is archived', async () => {
    // Archived in the primary, not in the secondary: no thaw, the restore reads the secondary's.
    const one = await storeBackup(primary, 'books', older, 'DEEP_ARCHIVE');
    await storeBackup(secondary, 'books', older);
    const prepare = createPrepareRestoreHandler({
      store: primary,
      stores: both(),
      logger: silentLogger,
      connection: server,
    });
    expect(await prepare({ database: 'books', backup: one.id, targetDatabase: 'books_x' })).toMatchObject({
      backupId: one.id,
      archived: false,
      copy: { role: 'secondary' },
    });

    // In the secondary alone, and archived there: that copy is prepared and thawed.
    const only = await storeBackup(secondary, 'books', newer, 'GLACIER');
    expect(await prepare({ database: 'books', backup: only.id, targetDatabase: 'books_y' })).toMatchObject({
      backupId: only.id,
      archived: true,
      storageClass: 'GLACIER',
      copy: { role: 'secondary' },
    });
    const thaw = createThawBackupHandler({ store: primary, stores: both(), policy, logger: silentLogger });
    const state = await thaw({ database: 'books', backupId: only.id });
    expect(state).toMatchObject({ backupId: only.id, storageClass: 'GLACIER' });
    expect(['requested', 'in-progress', 'available']).toContain(state.state);
    expect((await secondary.head(keysFor(secondary.prefix, only.id).dump))?.thaw.state).not.toBe('archived');
  });
});
