import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findBackup, parseSelector } from '../../../lib/catalog/backups.js';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import {
  BackupNotFoundError,
  CorruptBackupError,
  InvalidRestoreRequestError,
} from '../../../lib/domain/errors.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { putBackup } from '../../support/manifests.js';

const dirs: string[] = [];
function store(): FileStore {
  const dir = mkdtempSync(join(tmpdir(), 'pgbp-catalog-'));
  dirs.push(dir);
  return new FileStore(dir);
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const day = (d: number) => new Date(Date.UTC(2026, 5, d, 2, 0, 0));

describe('finding a backup', () => {
  it('takes the newest for latest, and the newest before a time for --before', async () => {
    const s = store();
    const [, second, third] = [
      await putBackup(s, 'app', day(18)),
      await putBackup(s, 'app', day(19)),
      await putBackup(s, 'app', day(20)),
    ];
    expect((await findBackup(s, 'app', parseSelector('app', 'latest'))).manifest.id).toBe(third.id);
    const before = parseSelector('app', 'latest', '2026-06-20T00:00:00Z');
    expect((await findBackup(s, 'app', before)).manifest.id).toBe(second.id);
    expect((await findBackup(s, 'app', parseSelector('app', second.id))).manifest.id).toBe(second.id);
  });

  it('refuses latest when the newest backup is damaged, naming the newest intact one', async () => {
    const s = store();
    const intact = await putBackup(s, 'app', day(19));
    const damaged = await putBackup(s, 'app', day(20), { size: 256 });
    truncateSync(join(s.root, keysFor('', damaged.id).dump), 100);
    const error = await findBackup(s, 'app', parseSelector('app', 'latest')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptBackupError);
    expect((error as Error).message).toContain(`the newest backup of app, ${damaged.id}, is not usable`);
    expect((error as Error).message).toContain(`the newest intact one is ${intact.id}`);
    // Asked for by id, the intact one is still there to restore.
    expect((await findBackup(s, 'app', parseSelector('app', intact.id))).manifest.id).toBe(intact.id);
    // A time before the damaged one selects the intact one without complaint.
    const before = parseSelector('app', 'latest', '2026-06-20T00:00:00Z');
    expect((await findBackup(s, 'app', before)).manifest.id).toBe(intact.id);
  });

  it('says there is no backup, or that the request is malformed, before touching anything', async () => {
    const s = store();
    await expect(findBackup(s, 'app', parseSelector('app', 'latest'))).rejects.toBeInstanceOf(
      BackupNotFoundError,
    );
    expect(() => parseSelector('app', 'app-2026')).toThrow(InvalidRestoreRequestError);
    expect(() => parseSelector('app', 'latest', 'yesterday')).toThrow(/malformed time "yesterday"/);
    expect(() => parseSelector('app', 'other-20260620T020000Z')).toThrow(/belongs to database other/);
  });
});
