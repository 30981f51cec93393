import { Transform } from 'node:stream';
import { type Body, type ByteSource, sourceOf } from '../../lib/storage/byte-source.js';
import type { BackupStore, PutOptions } from '../../lib/storage/store.js';

/** Flips every bit of each byte in place: a stand-in for encryption that keeps sizes. */
function flip(buf: Uint8Array, length = buf.length): void {
  for (let i = 0; i < length; i += 1) buf[i] = (buf[i] as number) ^ 0xff;
}

function flipped(source: ByteSource): ByteSource {
  return {
    async fill(into) {
      const filled = await source.fill(into);
      flip(into, filled);
      return filled;
    },
    destroy: (error) => source.destroy(error),
  };
}

/**
 * A store that transforms every byte on the way in and back on the way out, over another
 * store: the shape of client-side encryption, written against the seam only. It keeps the
 * capabilities that stay true over transformed bytes and drops the one that does not (a
 * child writing straight into the inner store's file would store untransformed bytes).
 */
export function scrambledStore(inner: BackupStore): BackupStore {
  const { local, directGet: _stored, ...kept } = inner.capabilities;
  return {
    url: `scrambled+${inner.url}`,
    prefix: inner.prefix,
    capabilities: {
      ...kept,
      // Free space stays true; a file for a child to write into would not.
      ...(local ? { local: { freeSpace: () => local.freeSpace() } } : {}),
    },
    putStream: (key: string, body: Body, options?: PutOptions) =>
      inner.putStream(key, flipped(sourceOf(body)), options),
    async getStream(key: string) {
      const stored = await inner.getStream(key);
      const out = new Transform({
        transform(chunk: Buffer, _enc, done) {
          const copy = Buffer.from(chunk);
          flip(copy);
          done(null, copy);
        },
      });
      stored.on('error', (e) => out.destroy(e));
      return stored.pipe(out);
    },
    putBytes(key: string, data: Uint8Array | string, options?: PutOptions) {
      const copy = Buffer.from(data);
      flip(copy);
      return inner.putBytes(key, copy, options);
    },
    async getBytes(key: string) {
      const data = Buffer.from(await inner.getBytes(key));
      flip(data);
      return data;
    },
    head: (key) => inner.head(key),
    list: (prefix) => inner.list(prefix),
    deleteMany: (keys) => inner.deleteMany(keys),
    getTags: (key) => inner.getTags(key),
    putTags: (key, tags) => inner.putTags(key, tags),
  };
}
