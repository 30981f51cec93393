import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ObjectExistsError } from '../../lib/domain/errors.js';
import type { BackupStore } from '../../lib/storage/store.js';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function keysUnder(store: BackupStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}

function sha(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * What every store, and every wrapper of one, must do for the callers to need no change: the
 * core of lib/storage/store.ts, tried on a fresh store from `open`.
 */
export function describeStoreContract(name: string, open: () => Promise<BackupStore>): void {
  describe(`${name}: the store contract`, () => {
    it('gives back the bytes it was given, with the size it stored in head and list', async () => {
      const store = await open();
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const key = `${store.prefix ? `${store.prefix}/` : ''}db/2026/06/01/db-20260601T020000Z.dump`;
      const put = await store.putStream(key, Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
      // A wrapper that encrypts stores a little more than it was given: the size is the stored one.
      expect(put.bytes).toBeGreaterThanOrEqual(data.length);
      expect(put.bytes).toBeLessThan(data.length * 1.01);
      expect(sha(await readAll(await store.getStream(key)))).toBe(sha(data));
      expect((await store.head(key))?.size).toBe(put.bytes);
      const listed = [];
      for await (const o of store.list(key.slice(0, key.lastIndexOf('/') + 1))) listed.push(o);
      expect(listed.map((o) => [o.key, o.size])).toEqual([[key, put.bytes]]);
    });

    it('never overwrites an object, and keeps the first', async () => {
      const store = await open();
      await store.putBytes('x/manifest.json', '{"first":true}');
      await expect(store.putBytes('x/manifest.json', '{"second":true}')).rejects.toBeInstanceOf(
        ObjectExistsError,
      );
      await expect(
        store.putStream('x/manifest.json', Readable.from([Buffer.from('third')])),
      ).rejects.toBeInstanceOf(ObjectExistsError);
      expect((await store.getBytes('x/manifest.json')).toString()).toBe('{"first":true}');
    });

    it('replaces a small object only when asked to', async () => {
      const store = await open();
      await store.putBytes('x/report.json', '{"passed":false}');
      await store.putBytes('x/report.json', '{"passed":true}', { replace: true });
      expect((await store.getBytes('x/report.json')).toString()).toBe('{"passed":true}');
    });

    it('leaves nothing under the key of a stream that failed', async () => {
      const store = await open();
      const failing = new Readable({
        read() {
          this.push(randomBytes(64 * 1024));
          this.destroy(new Error('the dump died'));
        },
      });
      await expect(store.putStream('y/broken.dump', failing)).rejects.toThrow('the dump died');
      expect(await store.head('y/broken.dump')).toBeUndefined();
      expect((await keysUnder(store, 'y/')).filter((k) => k.endsWith('broken.dump'))).toEqual([]);
    });

    it('lists under a prefix in key order, and deletes many at once', async () => {
      const store = await open();
      for (const k of ['z/b.json', 'z/a.json', 'z/c/d.json', 'zz/other.json']) await store.putBytes(k, '{}');
      expect(await keysUnder(store, 'z/')).toEqual(['z/a.json', 'z/b.json', 'z/c/d.json']);
      const result = await store.deleteMany(['z/a.json', 'z/c/d.json', 'z/never-there.json']);
      expect(result.failed).toEqual([]);
      expect(await keysUnder(store, 'z/')).toEqual(['z/b.json']);
      expect(await store.head('z/a.json')).toBeUndefined();
    });

    it('keeps the tags an object was stored with, and new ones', async () => {
      const store = await open();
      await store.putStream('t/x.dump', Readable.from([Buffer.from('dump')]), { tags: { tier: 'monthly' } });
      expect(await store.getTags('t/x.dump')).toEqual({ tier: 'monthly' });
      await store.putTags('t/x.dump', { tier: 'yearly' });
      expect(await store.getTags('t/x.dump')).toEqual({ tier: 'yearly' });
    });
  });
}
