import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thawBackup } from '../../../lib/catalog/thaw.js';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import { ArchivedBackupError } from '../../../lib/domain/errors.js';
import type { Manifest } from '../../../lib/domain/manifest.js';
import type { RestoreReport } from '../../../lib/domain/verify-report.js';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { type DatabaseSnapshot, snapshot } from '../../support/compare.js';
import { databaseExists, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { createBucket } from '../../support/s3.js';
import { awkwardDatabase, databasesLike, dump, restoreDeps } from './fixture.js';

const created: string[] = [];
let source: string;
let sourceSnapshot: DatabaseSnapshot;
let store: S3Store;
let manifest: Manifest;

function target(label: string): string {
  const name = uniqueDbName(label);
  created.push(name);
  return name;
}

beforeAll(async () => {
  source = await awkwardDatabase('s3_src');
  created.push(source);
  store = new S3Store(await createBucket(), 'backups');
  manifest = await dump(store, source);
  sourceSnapshot = await snapshot(source);
});

afterAll(async () => {
  for (const db of created) await dropDatabase(db);
});

describe('restore from S3', () => {
  it('restores the awkward fixture to a database equal to the source', async () => {
    const into = target('s3');
    const report = await runRestore(
      parseRestoreRequest({ database: source, backup: manifest.id, targetDatabase: into }),
      restoreDeps(store),
    );
    expect(report).toMatchObject({ passed: true, bytesFetched: manifest.sizeBytes });
    const after = await snapshot(into);
    expect(after.schema).toBe(sourceSnapshot.schema);
    expect(after.tables).toEqual(sourceSnapshot.tables);
    expect(after.largeObjects).toEqual(sourceSnapshot.largeObjects);
    expect(after.sequences).toEqual(sourceSnapshot.sequences);
  });

  it('stores the verify report beside the manifest, and a later verify replaces it', async () => {
    const key = keysFor(store.prefix, manifest.id).verify;
    const first = await runRestore(
      parseRestoreRequest({ mode: 'verify', database: source }),
      restoreDeps(store),
    );
    const second = await runRestore(
      parseRestoreRequest({ mode: 'verify', database: source }),
      restoreDeps(store),
    );
    expect(second.target).not.toBe(first.target);
    const stored = JSON.parse((await store.getBytes(key)).toString('utf8')) as RestoreReport;
    expect(stored).toEqual(second);
    expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
  });
});

describe('an archived backup', () => {
  it('fails fast with ArchivedBackupError saying how to thaw, and restores once thawed', async () => {
    const archived = await dump(store, source, { storageClass: 'DEEP_ARCHIVE' });
    const into = target('archived');
    const request = parseRestoreRequest({ database: source, backup: archived.id, targetDatabase: into });

    const error = await runRestore(request, restoreDeps(store)).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(ArchivedBackupError);
    expect(error?.message).toContain(`is in DEEP_ARCHIVE`);
    expect(error?.message).toContain(`pgbp thaw ${archived.id} --database ${source}`);
    expect(await databaseExists(into)).toBe(false);

    const thawed = await thawBackup(
      store,
      source,
      { kind: 'id', id: archived.id },
      { tier: 'Bulk', days: 1 },
    );
    expect(thawed).toMatchObject({
      backupId: archived.id,
      storageClass: 'DEEP_ARCHIVE',
      thaw: { state: 'available' },
    });

    const report = await runRestore(request, restoreDeps(store));
    expect(report).toMatchObject({ passed: true, backup: { storageClass: 'DEEP_ARCHIVE' } });
    expect((await snapshot(into)).tables).toEqual(sourceSnapshot.tables);
  });
});
