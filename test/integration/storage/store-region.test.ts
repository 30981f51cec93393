import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.js';
import { KeyUnavailableError } from '../../../lib/domain/errors.js';
import { kmsClient, kmsClientIn } from '../../../lib/platform/aws-clients/kms.js';
import { s3ClientIn } from '../../../lib/platform/aws-clients/s3.js';
import { openStore } from '../../../lib/storage/open-store.js';
import { openRoleStores } from '../../../lib/storage/store-roles.js';

/**
 * A second store in another region than the process's (the tests' moto clients talk to
 * us-east-1): its bucket and its key live in us-west-2, where moto keeps KMS keys and aliases
 * apart from us-east-1's, as KMS does.
 */
const REGION = 'us-west-2';
const DUMP = 'backups/app/2026/06/01/app-20260601T020000Z.dump';

let nas: string;
let bucket: string;
let alias: string;
let keyArn: string;

beforeAll(async () => {
  nas = await mkdtemp(join(tmpdir(), 'pgbp-region-'));
  bucket = `pgbp-t-${randomBytes(5).toString('hex')}`;
  await s3ClientIn(REGION).send(
    new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: REGION } }),
  );
  const kms = kmsClientIn(REGION);
  const created = await kms.createKey({ Description: 'pgbp test secondary' });
  keyArn = created.KeyMetadata?.Arn ?? '';
  alias = `alias/pgbp-secondary-${randomBytes(4).toString('hex')}`;
  await kms.createAlias({ AliasName: alias, TargetKeyId: created.KeyMetadata?.KeyId });
});

afterAll(async () => {
  await rm(nas, { recursive: true, force: true });
});

function config(secondary: Record<string, unknown>) {
  return parseConfig(
    {
      stage: 'dev',
      stores: {
        primary: { url: `file://${nas}` },
        secondary: {
          url: `s3://${bucket}/backups`,
          kmsKeyId: alias,
          encryption: { kmsKeyId: alias, required: true },
          ...secondary,
        },
      },
    },
    'test config',
  );
}

describe('a store in another region', () => {
  it('writes to its bucket and under its key in its own region, and reads back what it wrote', async () => {
    const [, secondary] = await openRoleStores(config({ region: REGION }));
    const store = secondary?.store;
    if (!store) throw new Error('no secondary store opened');
    const data = randomBytes(300_000);
    await store.putStream(DUMP, Readable.from([data]));

    expect(await store.capabilities.envelope?.keyId()).toBe(keyArn);
    expect(keyArn).toContain(`:${REGION}:`);
    const stored = await s3ClientIn(REGION).send(new GetObjectCommand({ Bucket: bucket, Key: DUMP }));
    const ciphertext = Buffer.from(
      await (stored.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    expect(ciphertext.includes(data.subarray(0, 64))).toBe(false);
    expect((await store.getBytes(DUMP)).equals(data)).toBe(true);
  });

  it('cannot find its key without its region: the alias exists in that region alone', async () => {
    const [, secondary] = await openRoleStores(config({}));
    const store = secondary?.store;
    if (!store) throw new Error('no secondary store opened');
    const failure = await store
      .putStream('backups/app/2026/06/02/app-20260602T020000Z.dump', Readable.from([randomBytes(1000)]))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(KeyUnavailableError);
    expect((failure as Error).message).toMatch(new RegExp(`KMS key ${alias} does not exist`));
  });

  it("keeps to the process's region when a stage's config (whose region is the stage's) opens one store", async () => {
    // `pgbp dump --store s3://… --config FILE` opens its store with the whole config as settings;
    // the stage's `region` (eu-west-1 by default) is not the store's and must not move its clients.
    const here = `pgbp-t-${randomBytes(5).toString('hex')}`;
    await s3ClientIn('us-east-1').send(new CreateBucketCommand({ Bucket: here }));
    const key = await kmsClient().createKey({ Description: 'pgbp test stage key' });
    const stageAlias = `alias/pgbp-stage-${randomBytes(4).toString('hex')}`;
    await kmsClient().createAlias({ AliasName: stageAlias, TargetKeyId: key.KeyMetadata?.KeyId });
    const stage = parseConfig(
      { stage: 'dev', store: `s3://${here}/backups`, encryption: { kmsKeyId: stageAlias, required: true } },
      'test config',
    );
    expect(stage.region).not.toBe('us-east-1');
    const store = await openStore(stage.store, stage);
    const data = randomBytes(10_000);
    await store.putStream(DUMP, Readable.from([data]));
    expect(await store.capabilities.envelope?.keyId()).toBe(key.KeyMetadata?.Arn);
    expect((await store.getBytes(DUMP)).equals(data)).toBe(true);
  });

  it('is refused a region when it is not in S3', () => {
    expect(() =>
      parseConfig(
        { stage: 'dev', stores: { primary: { url: `file://${nas}`, region: REGION } } },
        'test config',
      ),
    ).toThrow(/stores\.primary\.region: only an s3:\/\/ store has a region/);
    expect(() => config({ region: 'west' })).toThrow(/stores\.secondary\.region: an AWS region such as/);
  });
});
