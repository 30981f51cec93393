import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IAMClient } from '@aws-sdk/client-iam';
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';
import { createUser, type EnforcingMoto, startEnforcingMoto } from '../../support/moto-iam.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { writeConfigFile } from '../../support/pipeline.js';

/**
 * A KMS key the dumping principal may not use: IAM refuses its GenerateDataKey (moto enforcing
 * the caller's policy), and `pgbp dump` must stop before it stores anything. The same dump by a
 * principal that may use the key succeeds, so what stops the first is the missing permission.
 */

const bucket = 'pgbp-forbidden-key';
const region = 'us-east-1';
const PRINCIPALS = {
  // What a dump sends to S3, and the key's description: everything but the data keys.
  forbidden: ['kms:DescribeKey'],
  allowed: ['kms:DescribeKey', 'kms:GenerateDataKey', 'kms:Decrypt'],
} as const;
type Principal = keyof typeof PRINCIPALS;
// The bucket, the key and its alias; then a user, its policy and an access key for each principal.
const SETUP_REQUESTS = 3 + 3 * Object.keys(PRINCIPALS).length;

let moto: EnforcingMoto;
let alias: string;
let database: string;
let dir: string;
const credentials: Partial<Record<Principal, { accessKeyId: string; secretAccessKey: string }>> = {};

function credentialsOf(who: Principal) {
  const c = credentials[who];
  if (!c) throw new Error(`no access key for ${who}`);
  return c;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgbp-forbidden-key-'));
  database = uniqueDbName('forbidden_key');
  await createDatabase(
    database,
    "create table t as select g, 'row ' || g as label from generate_series(1, 50) g",
  );
  moto = await startEnforcingMoto(SETUP_REQUESTS);
  const setup = {
    endpoint: moto.url,
    region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  };
  await new S3Client({ ...setup, forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }));
  const kms = new KMSClient(setup);
  const key = await kms.send(new CreateKeyCommand({ Description: 'dev stage key' }));
  alias = 'alias/pg-backup-pipeline-dev';
  await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyMetadata?.KeyId }));
  const iam = new IAMClient(setup);
  for (const [who, kmsActions] of Object.entries(PRINCIPALS) as [Principal, readonly string[]][]) {
    credentials[who] = await createUser(iam, who, [
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: `arn:aws:s3:::${bucket}` },
      {
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        Resource: `arn:aws:s3:::${bucket}/*`,
      },
      // moto checks KMS actions against the resource "*" only.
      { Effect: 'Allow', Action: [...kmsActions], Resource: '*' },
    ]);
  }
}, 60_000);

afterAll(async () => {
  await moto?.stop();
  if (database) await dropDatabase(database);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `pgbp dump` of the database into `s3://bucket/<prefix>` as `who`, encrypting under the dev key. */
async function dumpAs(who: Principal, prefix: string) {
  const config = await writeConfigFile(join(dir), {
    stage: 'dev',
    store: `s3://${bucket}/${prefix}`,
    region,
    encryption: { kmsKeyId: alias, required: true },
  });
  const { accessKeyId, secretAccessKey } = credentialsOf(who);
  return runCli(['dump', '--database', database, '--config', config, '--json'], {
    env: {
      AWS_ENDPOINT_URL: moto.url,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
    },
  });
}

async function keysUnder(who: Principal, prefix: string): Promise<string[]> {
  const s3 = new S3Client({
    endpoint: moto.url,
    region,
    forcePathStyle: true,
    credentials: credentialsOf(who),
  });
  // A prefix without its slash: moto's signature check trips on an encoded one.
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (listed.Contents ?? []).map((o) => o.Key ?? '');
}

describe('a KMS key the dumping principal may not use', () => {
  it('dumps when the principal may make data keys under the key', async () => {
    const run = await dumpAs('allowed', 'allowed');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const keys = await keysUnder('allowed', 'allowed');
    expect(keys.some((k) => k.endsWith('.dump'))).toBe(true);
    expect(keys.some((k) => k.endsWith('.manifest.json'))).toBe(true);
  });

  it('fails pgbp dump with KeyUnavailableError naming the key, before any object exists, with no key material', async () => {
    const run = await dumpAs('forbidden', 'forbidden');
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`KeyUnavailableError: KMS key ${alias} may not be used by this process`);
    expect(await keysUnder('forbidden', 'forbidden')).toEqual([]);
    const said = run.stdout + run.stderr;
    // Neither the caller's secret nor any key, plain or wrapped (base64 of 32 bytes or more).
    expect(said).not.toContain(credentialsOf('forbidden').secretAccessKey);
    expect(said).not.toMatch(/[A-Za-z0-9+/]{43,}={0,2}/);
  });
});
