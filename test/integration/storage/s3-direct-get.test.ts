/**
 * The prefetcher's plain signed GETs of S3 objects (lib/storage/s3-direct-get.ts): the bytes
 * stored, under any key, whatever the encryption at rest; S3's refusals as S3 states them; and
 * signatures S3 checks (a moto server of its own that enforces IAM).
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { IAMClient } from '@aws-sdk/client-iam';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3DirectGet } from '../../../lib/storage/s3-direct-get.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { createUser, type EnforcingMoto, startEnforcingMoto } from '../../support/moto-iam.js';
import { createBucket } from '../../support/s3.js';

async function bytesOf(body: Readable | undefined): Promise<Buffer> {
  if (!body) throw new Error('not read by a plain GET');
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// Characters the SDK escapes in a key's path, one a signature must cover as S3 sees it.
const KEYS = [
  'wal/~cluster/main/wal/0000000100000000/000000010000000000000001-ab.zst',
  "odd/a b+c=d!e'f(g)h*i&j,k;l@m$n.zst",
  'odd/ünïcödé/€.zst',
];

describe('plain GETs of S3 objects', () => {
  it('read the bytes stored under any key, SSE-S3 and SSE-KMS alike', async () => {
    const bucket = await createBucket();
    const keyId = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
    for (const store of [new S3Store(bucket, ''), new S3Store(bucket, 'kms', { kmsKeyId: keyId })]) {
      for (const key of KEYS) {
        const bytes = randomBytes(300_000);
        await store.putBytes(`${store.prefix}/${key}`, bytes);
        expect(await bytesOf(await store.capabilities.directGet?.open(`${store.prefix}/${key}`))).toEqual(
          bytes,
        );
      }
    }
  });

  it('refuse a key the bucket lacks with S3’s own answer', async () => {
    const store = new S3Store(await createBucket(), '');
    await store.putBytes('there.zst', 'x');
    const direct = store.capabilities.directGet;
    await expect(direct?.open('missing.zst')).rejects.toMatchObject({
      name: 'NoSuchKey',
      message: expect.stringMatching(/missing\.zst: 404 NoSuchKey/),
    });
    expect(await bytesOf(await direct?.open('there.zst'))).toEqual(Buffer.from('x'));
  });
});

describe('plain GETs against S3 that checks signatures and policies', () => {
  const bucket = 'pgbp-direct-get';
  const region = 'us-east-1';
  let moto: EnforcingMoto;
  const keys: Record<'reader' | 'writer', { accessKeyId: string; secretAccessKey: string }> = {
    reader: { accessKeyId: '', secretAccessKey: '' },
    writer: { accessKeyId: '', secretAccessKey: '' },
  };
  const clientOf = (credentials: { accessKeyId: string; secretAccessKey: string }) =>
    new S3Client({ endpoint: moto.url, region, forcePathStyle: true, credentials });

  beforeAll(async () => {
    // The bucket; then a user, its policy and an access key for each of the two.
    moto = await startEnforcingMoto(1 + 3 * 2);
    const setup = {
      endpoint: moto.url,
      region,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    };
    await new S3Client({ ...setup, forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }));
    const iam = new IAMClient(setup);
    const objects = `arn:aws:s3:::${bucket}/*`;
    keys.reader = await createUser(iam, 'reader', [
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: objects },
    ]);
    keys.writer = await createUser(iam, 'writer', [
      { Effect: 'Allow', Action: ['s3:PutObject'], Resource: objects },
    ]);
  }, 60_000);

  afterAll(async () => {
    await moto?.stop();
  });

  it('are signed as S3 checks them, and refused 403 without s3:GetObject or with a wrong secret', async () => {
    // A WAL object's key (moto's own check of signatures fails the SDK's too on rarer characters).
    const key = KEYS[0] as string;
    const bytes = randomBytes(1000);
    await new S3Store(bucket, '', { client: clientOf(keys.reader) }).putBytes(key, bytes);
    expect(await bytesOf(await new S3DirectGet(clientOf(keys.reader), bucket).open(key))).toEqual(bytes);
    await expect(new S3DirectGet(clientOf(keys.writer), bucket).open(key)).rejects.toMatchObject({
      message: expect.stringMatching(/: 403 AccessDenied$/),
    });
    const forged = { accessKeyId: keys.reader.accessKeyId, secretAccessKey: 'not-the-secret' };
    await expect(new S3DirectGet(clientOf(forged), bucket).open(key)).rejects.toMatchObject({
      message: expect.stringMatching(/: 403 SignatureDoesNotMatch$/),
    });
  });
});
