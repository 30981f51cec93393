/**
 * The prefetcher's view of the archive (ListedWalArchive, lib/wal/archive.ts): a WAL folder
 * listed once for the segments in it, against a directory store and S3 (moto), and never "not
 * archived" from an earlier listing.
 */
import { describe, expect, it } from 'vitest';
import { parseWalFileName, type WalFileName } from '../../../lib/domain/wal-names.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { ListedWalArchive, WalArchive } from '../../../lib/wal/archive.js';
import { createBucket } from '../../support/s3.js';
import { tempDir } from '../../support/temp.js';

const segment = (n: number): WalFileName => {
  const file = parseWalFileName(`00000001000000000000000${n.toString(16).toUpperCase()}`);
  if (!file) throw new Error('not a segment name');
  return file;
};
const sha = (n: number) => n.toString(16).padStart(64, '0');

/** The store, with the listings asked of it counted: each is a request to S3. */
function counted(store: BackupStore): { store: BackupStore; listings: () => number } {
  let listings = 0;
  const list = store.list.bind(store);
  return {
    store: Object.assign(Object.create(store) as BackupStore, {
      list: (prefix: string) => {
        listings++;
        return list(prefix);
      },
    }),
    listings: () => listings,
  };
}

const stores: [string, () => Promise<BackupStore>][] = [
  ['a directory store', async () => new FileStore(tempDir('pgbp-listing-'))],
  ['S3', async () => new S3Store(await createBucket(), 'wal-listing')],
];

describe.each(stores)('the prefetcher’s listings of the WAL archive in %s', (_label, open) => {
  it('lists a folder once for the segments it holds, and again for one it lacked', async () => {
    const { store, listings } = counted(await open());
    const writer = new WalArchive(store, 'main');
    for (const n of [1, 2, 3]) await store.putBytes(writer.keyOf(segment(n), sha(n)), `segment ${n}`);
    const listed = new ListedWalArchive(store, 'main');
    for (const n of [1, 2, 3]) {
      expect(await listed.find(segment(n))).toEqual([
        { key: writer.keyOf(segment(n), sha(n)), sha256: sha(n), size: `segment ${n}`.length },
      ]);
    }
    expect(listings()).toBe(1);
    // Archived after the folder was listed: found by a listing made after the question.
    expect(await listed.find(segment(4))).toEqual([]);
    await store.putBytes(writer.keyOf(segment(4), sha(4)), 'segment 4');
    expect((await listed.find(segment(4))).map((c) => c.sha256)).toEqual([sha(4)]);
    expect(listings()).toBe(3);
  });

  it('lists a folder once for two segments asked at once, and afresh for one that listing lacks', async () => {
    const { store, listings } = counted(await open());
    const writer = new WalArchive(store, 'main');
    for (const n of [1, 2]) await store.putBytes(writer.keyOf(segment(n), sha(n)), `segment ${n}`);
    const listed = new ListedWalArchive(store, 'main');
    // The prefetcher's two workers at a recovery's start.
    const [one, two] = await Promise.all([listed.find(segment(1)), listed.find(segment(2))]);
    expect([one.map((c) => c.sha256), two.map((c) => c.sha256)]).toEqual([[sha(1)], [sha(2)]]);
    expect(listings()).toBe(1);
    // Asked while another segment's listing is under way, a name that listing lacks is listed
    // again: "not archived" only from a listing made after the question.
    const fresh = new ListedWalArchive(store, 'main');
    const [found, lacking] = await Promise.all([fresh.find(segment(1)), fresh.find(segment(3))]);
    expect([found.map((c) => c.sha256), lacking]).toEqual([[sha(1)], []]);
    expect(listings()).toBe(3);
  });

  it('answers across folders, each listed once while recovery is in it', async () => {
    const { store, listings } = counted(await open());
    const writer = new WalArchive(store, 'main');
    const names = ['0000000100000000000000FF', '000000010000000100000000', '000000010000000200000000'];
    const files = names.map((n) => parseWalFileName(n) as WalFileName);
    for (const [i, file] of files.entries()) await store.putBytes(writer.keyOf(file, sha(i)), `segment ${i}`);
    const listed = new ListedWalArchive(store, 'main');
    for (const [i, file] of files.entries()) {
      expect((await listed.find(file)).map((c) => c.sha256)).toEqual([sha(i)]);
      expect((await listed.find(file)).map((c) => c.sha256)).toEqual([sha(i)]);
    }
    expect(listings()).toBe(3);
  });

  it('finds every copy of a segment, as a listing of its name does', async () => {
    const { store } = counted(await open());
    const writer = new WalArchive(store, 'main');
    await store.putBytes(writer.keyOf(segment(5), sha(5)), 'one');
    await store.putBytes(writer.keyOf(segment(5), sha(6)), 'other');
    const listed = new ListedWalArchive(store, 'main');
    const copies = await listed.find(segment(5));
    expect(copies.map((c) => c.sha256).sort()).toEqual([sha(5), sha(6)]);
    expect(copies).toEqual(await writer.find(segment(5)));
  });

  it('takes the archive for there within a second of a read that found archive.json, and asks the store after that', async () => {
    const opened = await open();
    let heads = 0;
    const head = opened.head.bind(opened);
    const store = Object.assign(Object.create(opened) as BackupStore, {
      head: (key: string) => {
        heads++;
        return head(key);
      },
    });
    const writer = new WalArchive(store, 'main');
    await store.putBytes(
      writer.infoKey,
      JSON.stringify({
        version: 1,
        cluster: 'main',
        systemIdentifier: '7',
        createdAt: '2026-12-01T00:00:00Z',
      }),
    );
    let clock = 1_000_000;
    const listed = new ListedWalArchive(store, 'main', () => clock);
    expect((await listed.info())?.systemIdentifier).toBe('7');
    const read = heads;
    // What a listing that lacks a name asks next (lib/wal/store-read.ts): answered by that read.
    expect(await listed.exists()).toBe(true);
    clock += 999;
    expect(await listed.exists()).toBe(true);
    expect(heads).toBe(read);
    // A second on, the store is asked again, and its answer dates the next ones.
    clock += 2;
    expect(await listed.exists()).toBe(true);
    expect(heads).toBe(read + 1);
    // Gone (a store unmounted, a prefix changed): said at the first question past the second,
    // and asked again each time after.
    await store.deleteMany([writer.infoKey]);
    expect(await listed.exists()).toBe(true);
    clock += 1_000;
    expect(await listed.exists()).toBe(false);
    expect(await listed.exists()).toBe(false);
    expect(heads).toBe(read + 3);
  });
});
