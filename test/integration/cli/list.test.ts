import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { runCli } from '../../support/cli.js';
import { putBackup } from '../../support/manifests.js';

const dir = mkdtempSync(join(tmpdir(), 'pgbp-list-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pgbp list', () => {
  it('marks a backup verified only when its last restore check passed', async () => {
    const store = new FileStore(dir);
    const good = await putBackup(store, 'app', new Date('2026-06-19T02:00:00Z'));
    const bad = await putBackup(store, 'app', new Date('2026-06-20T02:00:00Z'));
    const unchecked = await putBackup(store, 'app', new Date('2026-06-21T02:00:00Z'));
    await store.putBytes(keysFor('', good.id).verify, JSON.stringify({ backupId: good.id, passed: true }));
    await store.putBytes(keysFor('', bad.id).verify, JSON.stringify({ backupId: bad.id, passed: false }));

    const result = await runCli(['list', '--database', 'app', '--store', `file://${dir}`]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual([unchecked.id, bad.id, good.id]);
    expect(lines[0]).not.toMatch(/verified|CHECK/);
    expect(lines[1]).toMatch(/CHECK FAILED$/);
    expect(lines[2]).toMatch(/verified$/);
  });
});
