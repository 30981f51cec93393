import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { writesIntoStoreFile } from '../../../lib/storage/child-output.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { dropDatabase } from '../../support/pg.js';
import { scrambledStore } from '../../support/scrambled-store.js';
import { tempDir } from '../../support/temp.js';
import { awkwardDatabase, dump, restoreDeps } from '../restore/fixture.js';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

async function firstBytes(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    await fh.read(buf, 0, 4, 0);
    return buf;
  } finally {
    await fh.close();
  }
}

const created: string[] = [];
afterAll(async () => {
  for (const db of created) await dropDatabase(db);
});

describe('where the last process of a pipe writes', () => {
  it('writes into the file store itself only for a compressor that never seeks back', async () => {
    const files = new FileStore(tempDir('pgbp-out-'));
    expect(writesIntoStoreFile(files, 'sequential')).toBe(true);
    expect(writesIntoStoreFile(files, 'seeking')).toBe(false);
    expect(writesIntoStoreFile(new S3Store('pgbp-unused', ''), 'sequential')).toBe(false);
    // A wrapper that changes the stored bytes offers no file: the compressor would bypass it.
    expect(writesIntoStoreFile(scrambledStore(files), 'sequential')).toBe(false);
  });

  it('sends a dump through a wrapper of the file store, whose bytes it stores, and verifies it back', async () => {
    const source = await awkwardDatabase('wrapped');
    created.push(source);
    const dir = tempDir('pgbp-wrapped-');
    const plain = new FileStore(dir);
    const wrapped = scrambledStore(plain);

    const manifest = await dump(wrapped, source);
    // What reached the directory went through the wrapper: no zstd frame starts it.
    expect((await firstBytes(join(dir, manifest.key))).equals(ZSTD_MAGIC)).toBe(false);
    const direct = await dump(plain, source);
    expect((await firstBytes(join(dir, direct.key))).equals(ZSTD_MAGIC)).toBe(true);

    const report = await runRestore(
      parseRestoreRequest({ mode: 'verify', database: source, backup: manifest.id }),
      restoreDeps(wrapped),
    );
    expect(report).toMatchObject({ passed: true, backupId: manifest.id });
  });
});
