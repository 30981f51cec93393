import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CorruptBackupError, KeyUnavailableError } from '../../../lib/domain/errors.js';
import { kmsClient } from '../../../lib/platform/aws-clients/kms.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { withEncryption } from '../../../lib/storage/open-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { keyFile, kmsKey } from '../../support/keys.js';
import { tempDir } from '../../support/temp.js';

const DUMP = 'db/2026/06/01/db-20260601T020000Z.dump';
const WAL = `~cluster/main/wal/0000000100000000/000000010000000000000003-${'a'.repeat(64)}.zst`;

async function fileStore(): Promise<{ inner: FileStore; dir: string }> {
  const dir = tempDir('pgbp-enc-');
  return { inner: new FileStore(dir), dir };
}

/** Plaintext with a marker every 4 KiB, so a leak anywhere in the stored bytes would show. */
function marked(bytes: number): Buffer {
  const data = randomBytes(bytes);
  for (let at = 0; at + 16 < bytes; at += 4096) data.write('PLAINTEXT-MARKER', at);
  return data;
}

async function readAll(store: BackupStore, key: string): Promise<{ bytes: Buffer; error?: Error }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of await store.getStream(key)) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error: error as Error };
  }
}

describe('the encrypting wrapper', () => {
  it('stores data objects as ciphertext bound to their place, and the catalog as it is', async () => {
    const { inner, dir } = await fileStore();
    const store = await withEncryption(inner, { keyFile: await keyFile(), required: true }, 'local');
    const data = marked(2 * 1024 * 1024 + 100);
    const put = await store.putStream(DUMP, Readable.from([data]));
    await store.putBytes(WAL, data.subarray(0, 70_000));
    await store.putBytes('db/2026/06/01/db-20260601T020000Z.manifest.json', '{"catalog":true}');

    const stored = await readFile(join(dir, DUMP));
    expect(stored.length).toBe(put.bytes);
    expect(stored.includes('PLAINTEXT-MARKER')).toBe(false);
    expect((await readFile(join(dir, WAL))).includes('PLAINTEXT-MARKER')).toBe(false);
    expect((await readFile(join(dir, 'db/2026/06/01/db-20260601T020000Z.manifest.json'))).toString()).toBe(
      '{"catalog":true}',
    );
    expect((await readAll(store, DUMP)).bytes.equals(data)).toBe(true);
    expect((await store.getBytes(WAL)).equals(data.subarray(0, 70_000))).toBe(true);
    expect(await store.capabilities.envelope?.describe(WAL)).toMatchObject({
      format: 'aws-encryption-sdk',
      suite: 'ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY',
      frameLength: 1024 * 1024,
      context: {
        'pgbp:stage': 'local',
        'pgbp:cluster': 'main',
        'pgbp:wal': '000000010000000000000003',
      },
    });
    // A child writing into the inner store's file would bypass the encryption.
    expect(store.capabilities.local?.openSink).toBeUndefined();
    // A child reading the inner store's file would read the ciphertext.
    expect(inner.capabilities.local?.fileOf?.(WAL)).toBe(join(dir, WAL));
    expect(store.capabilities.local?.fileOf).toBeUndefined();
    expect(store.capabilities.local?.freeSpace).toBeDefined();
  });

  it('passes nothing of a frame that does not authenticate, wherever the flipped byte is', async () => {
    const { inner, dir } = await fileStore();
    const store = await withEncryption(inner, { keyFile: await keyFile(), required: true }, 'local');
    const data = marked(3 * 1024 * 1024 + 10);
    await store.putStream(DUMP, Readable.from([data]));
    const path = join(dir, DUMP);
    const good = await readFile(path);
    await chmod(path, 0o600);
    // In the header, in the second frame, and in the last frame's tag.
    for (const at of [40, 1024 * 1024 + 5000, good.length - 3]) {
      const bad = Buffer.from(good);
      bad[at] = (bad[at] as number) ^ 0x01;
      await writeFile(path, bad);
      const { bytes, error } = await readAll(store, DUMP);
      expect(error).toBeInstanceOf(CorruptBackupError);
      // Only whole frames before the damaged one came through, and they are the plaintext's.
      const frameOfFlip = Math.max(0, Math.floor((at - 200) / (1024 * 1024 + 28)));
      expect(bytes.length).toBeLessThanOrEqual(frameOfFlip * 1024 * 1024);
      expect(bytes.equals(data.subarray(0, bytes.length))).toBe(true);
    }
    // Cut short: the last frame is missing.
    await writeFile(path, good.subarray(0, good.length - 100));
    expect((await readAll(store, DUMP)).error).toBeInstanceOf(CorruptBackupError);
  });

  it('refuses an object moved to another key, and a stored digest that is not the manifest’s', async () => {
    const { inner, dir } = await fileStore();
    const store = await withEncryption(inner, { keyFile: await keyFile(), required: true }, 'local');
    await store.putStream(DUMP, Readable.from([marked(10_000)]));
    const other = 'db/2026/06/01/db-20260601T030000Z.dump';
    await inner.putBytes(other, await readFile(join(dir, DUMP)));
    const { error } = await readAll(store, other);
    expect(error).toBeInstanceOf(CorruptBackupError);
    expect(error?.message).toContain('pgbp:backup is "db-20260601T020000Z", expected "db-20260601T030000Z"');

    const wrongDigest = await store.getStream(DUMP, { expect: { sha256: '0'.repeat(64), bytes: 1 } });
    await expect(wrongDigest.toArray()).rejects.toThrow(/does not match its manifest/);
  });

  it('reads an object stored before encryption as it was stored', async () => {
    const { inner } = await fileStore();
    const plain = Buffer.from('PGDMP an old plaintext dump');
    await inner.putStream(DUMP, Readable.from([plain]));
    await inner.putBytes(WAL, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]));
    const store = await withEncryption(inner, { keyFile: await keyFile(), required: true }, 'local');
    expect((await readAll(store, DUMP)).bytes.equals(plain)).toBe(true);
    expect((await store.getBytes(WAL)).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]))).toBe(true);
  });

  it('refuses an object of another stage’s key, naming this one', async () => {
    const { inner } = await fileStore();
    const dev = await withEncryption(inner, { keyFile: await keyFile(), required: true }, 'dev');
    await dev.putBytes(WAL, Buffer.from('segment'));
    const prodKey = await keyFile();
    const prod = await withEncryption(inner, { keyFile: prodKey, required: true }, 'prod');
    const error = await prod.getBytes(WAL).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(KeyUnavailableError);
    expect(error?.message).toContain(prodKey);
  });

  it('names a key file that is missing, readable by others or not a key, and never its contents', async () => {
    const { inner } = await fileStore();
    const open = async (path: string) => {
      const store = await withEncryption(inner, { keyFile: path, required: true }, 'local');
      return store.capabilities.envelope?.ready().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    };
    const missing = join(tmpdir(), 'pgbp-no-such-key');
    expect((await open(missing))?.message).toBe(`key file ${missing} does not exist`);
    const open644 = await keyFile(0o644);
    const shared = await open(open644);
    expect(shared).toBeInstanceOf(KeyUnavailableError);
    expect(shared?.message).toBe(
      `key file ${open644} is readable by others (mode 0644): make it private with chmod 600`,
    );
    const short = await keyFile();
    await writeFile(short, 'too short');
    expect((await open(short))?.message).toContain('does not hold a 256-bit key');
    const hex = await keyFile();
    const material = randomBytes(32).toString('hex');
    await writeFile(hex, `${material}\n`);
    expect(await open(hex)).toBeUndefined();
  });

  it('names a KMS key that is missing or disabled before anything is written', async () => {
    const { inner } = await fileStore();
    const readiness = async (kmsKeyId: string) => {
      const store = await withEncryption(inner, { kmsKeyId, required: true }, 'dev');
      return store.capabilities.envelope?.ready().then(
        (id) => id,
        (e: unknown) => e as Error,
      );
    };
    const missing = await readiness('alias/pgbp-no-such-key');
    expect(missing).toBeInstanceOf(KeyUnavailableError);
    expect((missing as Error).message).toMatch(/^KMS key alias\/pgbp-no-such-key does not exist/);
    const key = await kmsKey('disabled');
    expect(await readiness(key.alias)).toBe(key.arn);
    await kmsClient().disableKey({ KeyId: key.id });
    const disabled = await readiness(key.alias);
    expect(disabled).toBeInstanceOf(KeyUnavailableError);
    expect((disabled as Error).message).toBe(`KMS key ${key.alias} is disabled, not enabled`);
  });
});
