import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ObjectExistsError } from '../../../lib/domain/errors.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { createBucket, inProgressUploads, listKeys } from '../../support/s3.js';

function chunks(total: number, chunk = 256 * 1024): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return this.push(null);
      const n = Math.min(chunk, total - sent);
      sent += n;
      this.push(randomBytes(n));
    },
  });
}

describe('S3Store', () => {
  it.each([
    ['exactly one part', 8 * 1024 * 1024],
    ['exactly two parts', 16 * 1024 * 1024],
    ['nothing', 0],
  ])('stores a stream of %s whole', async (_what, size) => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, '');
    const data = randomBytes(size);
    const pieces = [];
    for (let at = 0; at < size; at += 1024 * 1024 - 3) pieces.push(data.subarray(at, at + 1024 * 1024 - 3));
    expect((await store.putStream('edge.dump', Readable.from(pieces))).bytes).toBe(size);
    expect((await store.getBytes('edge.dump')).equals(data)).toBe(true);
    expect(await inProgressUploads(bucket)).toBe(0);
  });

  it('streams a multi-part object and reads back the same bytes', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, 'backups');
    const data = randomBytes(20 * 1024 * 1024 + 123);
    const { bytes } = await store.putStream(
      'backups/a/x.dump',
      Readable.from([data.subarray(0, 5e6), data.subarray(5e6)]),
      {
        tags: { tier: 'monthly' },
      },
    );
    expect(bytes).toBe(data.length);
    const back = await store.getBytes('backups/a/x.dump');
    expect(createHash('sha256').update(back).digest('hex')).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
    expect(await store.getTags('backups/a/x.dump')).toEqual({ tier: 'monthly' });
    expect(await inProgressUploads(bucket)).toBe(0);
  });

  it('leaves a multi-part object with the composite of the CRC32 of each part it sent', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, '');
    const part = 8 * 1024 * 1024;
    const data = randomBytes(2 * part + 1000);
    await store.putStream('x.dump', Readable.from([data]));
    const partCrcs = [0, part, 2 * part].map((start) => {
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(data.subarray(start, start + part)));
      return crc;
    });
    const composite = Buffer.alloc(4);
    composite.writeUInt32BE(crc32(Buffer.concat(partCrcs)));
    const head = await new S3Client({ forcePathStyle: true }).send(
      new HeadObjectCommand({ Bucket: bucket, Key: 'x.dump', ChecksumMode: 'ENABLED' }),
    );
    expect(head.ChecksumType).toBe('COMPOSITE');
    // S3 appends the number of parts ("…-3"); moto leaves it off.
    expect(head.ChecksumCRC32?.replace(/-3$/, '')).toBe(composite.toString('base64'));
  });

  it('refuses to overwrite an existing object, small or multi-part', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, '');
    await store.putBytes('k.json', '{"a":1}');
    await expect(store.putBytes('k.json', '{"a":2}')).rejects.toBeInstanceOf(ObjectExistsError);
    await expect(store.putStream('k.json', chunks(10 * 1024 * 1024))).rejects.toBeInstanceOf(
      ObjectExistsError,
    );
    expect((await store.getBytes('k.json')).toString()).toBe('{"a":1}');
    expect(await inProgressUploads(bucket)).toBe(0);
  });

  it('writes new objects without asking whether the key exists, which IAM can answer 403', async () => {
    const bucket = await createBucket();
    const commands: string[] = [];
    const client = new S3Client({ forcePathStyle: true });
    client.middlewareStack.add(
      (next, context) => (args) => {
        commands.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize' },
    );
    const store = new S3Store(bucket, '', { client });
    await store.putStream('small.dump', chunks(1024));
    await store.putStream('large.dump', chunks(10 * 1024 * 1024));
    await store.putBytes('m.json', '{}');
    expect(commands).not.toContain('HeadObjectCommand');
    expect(commands.filter((c) => c === 'ListObjectsV2Command')).toEqual([]);
    // The refusal stays with the conditional write.
    await expect(store.putStream('large.dump', chunks(10 * 1024 * 1024))).rejects.toBeInstanceOf(
      ObjectExistsError,
    );
    expect(commands).not.toContain('HeadObjectCommand');
    expect(await inProgressUploads(bucket)).toBe(0);
  });

  it('aborts the multipart upload and leaves no object when the stream fails midway', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, '');
    let sent = 0;
    const failing = new Readable({
      read() {
        sent += 1;
        if (sent > 80) this.destroy(new Error('source died'));
        else this.push(randomBytes(256 * 1024));
      },
    });
    await expect(store.putStream('dead.dump', failing)).rejects.toThrow('source died');
    expect(await listKeys(bucket)).toEqual([]);
    expect(await inProgressUploads(bucket)).toBe(0);
  });

  it('lists more than one page of keys in order', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, '');
    await Promise.all(
      Array.from({ length: 1005 }, (_, i) => store.putBytes(`p/${String(i).padStart(4, '0')}`, 'x')),
    );
    const keys: string[] = [];
    for await (const o of store.list('p/')) keys.push(o.key);
    expect(keys).toHaveLength(1005);
    expect(keys[0]).toBe('p/0000');
    expect(keys[1004]).toBe('p/1004');
  });
});

describe('S3Store encryption and storage class', () => {
  it("encrypts with the stage's KMS key and stores in the configured class", async () => {
    const bucket = await createBucket();
    const keyId = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
    const store = new S3Store(bucket, '', { kmsKeyId: keyId, storageClass: 'STANDARD_IA' });
    await store.putStream('enc.dump', chunks(9 * 1024 * 1024));
    await store.putBytes('enc.manifest.json', '{}');
    const dump = await store.head('enc.dump');
    expect(dump?.encryption).toEqual({ type: 'SSE-KMS', kmsKeyId: keyId });
    expect(dump?.storageClass).toBe('STANDARD_IA');
    expect((await store.head('enc.manifest.json'))?.encryption.type).toBe('SSE-KMS');
  });

  it('falls back to S3-managed AES-256 when no key is configured', async () => {
    const store = new S3Store(await createBucket(), '');
    await store.putBytes('plain.json', '{}');
    expect((await store.head('plain.json'))?.encryption).toEqual({ type: 'AES256' });
  });
});
