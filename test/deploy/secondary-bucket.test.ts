import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { SECONDARY_GRANTS } from '../../deploy/secondary-store.js';
import { type PackagedStack, packageStack, ROOT } from './package-stack.js';

/**
 * A stage with a second bucket in another region: config/staging.yml as shipped, with
 * `stores.secondary` in eu-central-1 (no shipped stage has one: a second region is the owners'
 * choice per stage, and its bucket must exist before the stage deploys). Packaged once for this
 * file, and deploy/secondary-bucket.yml read beside it.
 */

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation, read as untyped JSON
type Cfn = Record<string, any>;

const SECOND_BUCKET = 'pg-backup-pipeline-staging-secondary';
const SECOND_REGION = 'eu-central-1';
const SECOND_ALIAS = 'alias/pg-backup-pipeline-staging-secondary';

async function stagingWithSecondary(): Promise<string> {
  const config = parse(await readFile(join(ROOT, 'config/staging.yml'), 'utf8')) as Cfn;
  config.stores = {
    primary: { url: config.store },
    secondary: {
      url: `s3://${SECOND_BUCKET}/backups`,
      region: SECOND_REGION,
      kmsKeyId: SECOND_ALIAS,
      encryption: { kmsKeyId: SECOND_ALIAS, required: true },
    },
  };
  return stringify(config);
}

let packaged: PackagedStack | undefined;
let template: PackagedStack['template'];
let companion: Cfn;
let parameters: Record<string, string | number>;

beforeAll(async () => {
  const fixture = await stagingWithSecondary();
  packaged = await packageStack('staging', { 'staging.yml': fixture });
  template = packaged.template;
  companion = parse(await readFile(join(ROOT, 'deploy/secondary-bucket.yml'), 'utf8'));
  // The parameters the README's command passes, computed from the same fixture.
  const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const root = await mkdtemp(join(tmpdir(), 'pgbp-secondary-'));
  try {
    await mkdir(join(root, 'config'));
    await writeFile(join(root, 'config/staging.yml'), fixture);
    const { stageSettings } = await import('../../deploy/stage-settings.js');
    parameters = { ...stageSettings('staging', { root }).secondary?.parameters };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}, 120_000);

afterAll(async () => {
  await packaged?.remove();
});

const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

function resource(id: string): Cfn {
  const r = template.Resources[id];
  if (!r) throw new Error(`no resource ${id} in the template`);
  return r;
}

/** Every statement that applies to a role: its inline policies and the policies attached to it. */
function statementsOf(role: string): Cfn[] {
  const inline = (resource(role).Properties.Policies ?? []).flatMap((p: Cfn) => p.PolicyDocument.Statement);
  const attached = Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(`"${role}"`))
    .flatMap((r) => r.Properties.PolicyDocument.Statement);
  return [...inline, ...attached];
}

/** The S3 actions a role has on a bucket (`bucket`) and on its objects (`objects`), by how its resources name it. */
function s3Actions(statements: Cfn[], names: (resource: unknown) => 'bucket' | 'objects' | undefined) {
  const out = { bucket: new Set<string>(), objects: new Set<string>() };
  for (const s of statements) {
    if (s.Effect !== 'Allow') continue;
    for (const r of asArray(s.Resource)) {
      const kind = names(r);
      if (!kind) continue;
      for (const a of asArray(s.Action) as string[]) if (a.startsWith('s3:')) out[kind].add(a);
    }
  }
  return { bucket: [...out.bucket].sort(), objects: [...out.objects].sort() };
}

const stageBucket = (r: unknown) => {
  const text = JSON.stringify(r);
  if (text === JSON.stringify({ 'Fn::GetAtt': ['BackupBucket', 'Arn'] })) return 'bucket';
  return text.includes(`\${BackupBucket.Arn}/`) ? 'objects' : undefined;
};
const secondBucket = (r: unknown) => {
  const text = JSON.stringify(r);
  if (text === JSON.stringify({ 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${SECOND_BUCKET}` })) return 'bucket';
  return text.includes(`:s3:::${SECOND_BUCKET}/`) ? 'objects' : undefined;
};

describe('a stage with a second bucket in another region: the grants', () => {
  it('grants every role whose code reaches the secondary store the second bucket, each as it is granted the stage bucket', () => {
    expect(SECONDARY_GRANTS.map((g) => g.role)).toEqual([
      'DumpTaskRole',
      'BaseBackupTaskRole',
      'WalPushRole',
      'CheckSizeRole',
      'RestoreTaskRole',
      'PitrDrillTaskRole',
      'PrepareRestoreRole',
      'ThawBackupRole',
      'ApplyRetentionRole',
    ]);
    for (const { role } of SECONDARY_GRANTS) {
      const statements = statementsOf(role);
      const onStage = s3Actions(statements, stageBucket);
      const onSecond = s3Actions(statements, secondBucket);
      expect(onSecond, role).toEqual(onStage);
      expect(onSecond.objects.length, role).toBeGreaterThan(0);
    }
    // Under the store's prefix only, as on the stage bucket.
    const dump = statementsOf('DumpTaskRole');
    const list = dump.find((s) => s.Action === 's3:ListBucket' && secondBucket(s.Resource) === 'bucket');
    expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['backups/', 'backups/*'] } });
    const objects = dump.filter((s) => asArray(s.Resource).some((r) => secondBucket(r) === 'objects'));
    expect(objects.map((s) => s.Resource)).toEqual([
      { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${SECOND_BUCKET}/backups/*` },
    ]);
    // The size check reads; the WAL pusher stores and reads the cluster's archive and never deletes.
    expect(s3Actions(statementsOf('CheckSizeRole'), secondBucket).objects).toEqual(['s3:GetObject']);
    const walPush = statementsOf('WalPushRole');
    expect(
      walPush.filter(
        (s) => s.Effect === 'Allow' && asArray(s.Resource).some((r) => secondBucket(r) === 'objects'),
      ),
    ).toEqual([
      {
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${SECOND_BUCKET}/backups/~cluster/main/*` },
      },
    ]);
    expect(walPush).toContainEqual({
      Effect: 'Deny',
      Action: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
      Resource: [
        { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${SECOND_BUCKET}` },
        { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${SECOND_BUCKET}/*` },
      ],
    });
  });

  it('lets a restore fall back to the secondary: the restore task, the PITR drill, Prepare and Thaw read it, and nothing there is deleted', () => {
    const onSecond = (role: string) => s3Actions(statementsOf(role), secondBucket);
    // Reads, and the verify or drill report written beside the copy that was read.
    for (const role of ['RestoreTaskRole', 'PitrDrillTaskRole'])
      expect(onSecond(role), role).toEqual({
        bucket: ['s3:ListBucket'],
        objects: ['s3:GetObject', 's3:PutObject'],
      });
    expect(onSecond('PrepareRestoreRole')).toEqual({ bucket: ['s3:ListBucket'], objects: ['s3:GetObject'] });
    expect(onSecond('ThawBackupRole')).toEqual({
      bucket: ['s3:ListBucket'],
      objects: ['s3:GetObject', 's3:RestoreObject'],
    });
    for (const role of ['RestoreTaskRole', 'PitrDrillTaskRole', 'PrepareRestoreRole', 'ThawBackupRole']) {
      const list = statementsOf(role).find(
        (s) => s.Action === 's3:ListBucket' && secondBucket(s.Resource) === 'bucket',
      );
      expect(list?.Condition, role).toEqual({ StringLike: { 's3:prefix': ['backups/', 'backups/*'] } });
      const objects = statementsOf(role).filter((s) =>
        asArray(s.Resource).some((r) => secondBucket(r) === 'objects'),
      );
      expect(
        objects.map((s) => s.Resource),
        role,
      ).toEqual([{ 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${SECOND_BUCKET}/backups/*` }]);
    }
  });

  it('gives the second bucket to no other role: the watches of the stage bucket read it alone', () => {
    const granted = new Set(SECONDARY_GRANTS.map((g) => g.role));
    const others = Object.entries(template.Resources)
      .filter(([id, r]) => r.Type === 'AWS::IAM::Role' && !granted.has(id))
      .map(([id]) => id);
    expect(others).toEqual(expect.arrayContaining(['CheckWalRole', 'CheckStalenessRole']));
    for (const id of others) {
      expect(JSON.stringify(statementsOf(id)), id).not.toContain(SECOND_BUCKET);
      expect(JSON.stringify(statementsOf(id)), id).not.toContain(SECOND_REGION);
    }
  });

  it('grants the second key by its alias in its region: data keys through S3 there, or for this stage’s objects', () => {
    const keyArn = { 'Fn::Sub': `arn:\${AWS::Partition}:kms:${SECOND_REGION}:\${AWS::AccountId}:key/*` };
    for (const { role, writes, envelope } of SECONDARY_GRANTS) {
      const kms = statementsOf(role)
        .filter((s) => s.Effect === 'Allow')
        .filter(
          (s) =>
            (asArray(s.Action) as string[]).some((a) => a.startsWith('kms:')) &&
            JSON.stringify(s.Resource).includes(SECOND_REGION),
        );
      const dataKeys = writes ? ['kms:GenerateDataKey', 'kms:Decrypt'] : ['kms:Decrypt'];
      const underAlias = { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': SECOND_ALIAS } };
      const throughS3 = {
        Effect: 'Allow',
        Action: dataKeys,
        Resource: keyArn,
        Condition: {
          ...underAlias,
          StringEquals: { 'kms:ViaService': `s3.${SECOND_REGION}.amazonaws.com` },
        },
      };
      // Thaw reads only what S3 decrypts for it (manifests, heads): no envelope, as on the stage key.
      expect(kms, role).toEqual(
        envelope === false
          ? [throughS3]
          : [
              throughS3,
              {
                Effect: 'Allow',
                Action: dataKeys,
                Resource: keyArn,
                Condition: { ...underAlias, StringEquals: { 'kms:EncryptionContext:pgbp:stage': 'staging' } },
              },
              { Effect: 'Allow', Action: 'kms:DescribeKey', Resource: keyArn, Condition: underAlias },
            ],
      );
    }
    expect(SECONDARY_GRANTS.filter((g) => g.envelope === false).map((g) => g.role)).toEqual([
      'ThawBackupRole',
    ]);
    // The restore task and the PITR drill write their reports: data keys, as on the stage key.
    for (const role of ['RestoreTaskRole', 'PitrDrillTaskRole'])
      expect(SECONDARY_GRANTS.find((g) => g.role === role)?.writes, role).toBe(true);
  });
});

/** The companion template with its parameters, conditions and the pseudo parameter NoValue resolved. */
function resolved(value: unknown, params: Record<string, unknown>): unknown {
  if (Array.isArray(value)) return value.map((v) => resolved(v, params)).filter((v) => v !== NO_VALUE);
  if (!value || typeof value !== 'object') return value;
  const v = value as Cfn;
  if ('Ref' in v && typeof v.Ref === 'string' && Object.keys(v).length === 1) {
    if (v.Ref === 'AWS::NoValue') return NO_VALUE;
    return v.Ref in params ? params[v.Ref] : v;
  }
  if ('Fn::If' in v) {
    const [condition, yes, no] = v['Fn::If'];
    const on = condition === 'ObjectLockOn' && params.ObjectLockEnabled === 'true';
    return resolved(on ? yes : no, params);
  }
  const out: Cfn = {};
  for (const [k, x] of Object.entries(v)) {
    const r = resolved(x, params);
    if (r !== NO_VALUE) out[k] = r;
  }
  return out;
}
const NO_VALUE = Symbol('AWS::NoValue');

describe('deploy/secondary-bucket.yml: the second bucket and its key', () => {
  it('takes exactly the parameters the stage config gives it', () => {
    expect(Object.keys(companion.Parameters).sort()).toEqual(Object.keys(parameters).sort());
    expect(parameters).toMatchObject({ Stage: 'staging', BucketName: SECOND_BUCKET, KeyAlias: SECOND_ALIAS });
    for (const [name, spec] of Object.entries(companion.Parameters as Record<string, Cfn>)) {
      if (spec.AllowedValues) expect(spec.AllowedValues, name).toContain(parameters[name]);
      if (spec.AllowedPattern)
        expect(String(parameters[name]), name).toMatch(new RegExp(spec.AllowedPattern));
    }
  });

  it('versions the bucket, encrypts it with SSE-KMS under a rotating key of its region, blocks public access and retains all', () => {
    const r = companion.Resources;
    expect(Object.keys(r).sort()).toEqual([
      'SecondaryBucket',
      'SecondaryBucketPolicy',
      'SecondaryKey',
      'SecondaryKeyAlias',
    ]);
    for (const id of Object.keys(r)) {
      expect(r[id].DeletionPolicy, id).toBe('Retain');
      expect(r[id].UpdateReplacePolicy, id).toBe('Retain');
    }
    expect(r.SecondaryKey.Properties.EnableKeyRotation).toBe(true);
    expect(r.SecondaryKey.Properties.MultiRegion).toBeUndefined();
    expect(resolved(r.SecondaryKeyAlias.Properties, parameters)).toEqual({
      AliasName: SECOND_ALIAS,
      TargetKeyId: { Ref: 'SecondaryKey' },
    });
    const bucket = resolved(r.SecondaryBucket.Properties, parameters) as Cfn;
    const stage = resource('BackupBucket').Properties;
    expect(bucket.BucketName).toBe(SECOND_BUCKET);
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      {
        ServerSideEncryptionByDefault: {
          SSEAlgorithm: 'aws:kms',
          KMSMasterKeyID: { 'Fn::GetAtt': ['SecondaryKey', 'Arn'] },
        },
        BucketKeyEnabled: true,
      },
    ]);
    expect(bucket.PublicAccessBlockConfiguration).toEqual(stage.PublicAccessBlockConfiguration);
    expect(bucket.OwnershipControls).toEqual(stage.OwnershipControls);
    // Staging has no Object Lock, so neither has its second bucket; with it, the stage's retention.
    expect(bucket.ObjectLockEnabled).toBeUndefined();
    const locked = resolved(r.SecondaryBucket.Properties, {
      ...parameters,
      ObjectLockEnabled: 'true',
      ObjectLockMode: 'GOVERNANCE',
      ObjectLockDays: 7,
    }) as Cfn;
    expect(locked.ObjectLockEnabled).toBe(true);
    expect(locked.ObjectLockConfiguration.Rule.DefaultRetention).toEqual({ Mode: 'GOVERNANCE', Days: 7 });
  });

  it('keeps the stage bucket’s lifecycle tiers: dumps archived by their tier tag, the physical archive never', () => {
    const bucket = resolved(companion.Resources.SecondaryBucket.Properties, parameters) as Cfn;
    // The fixture's second store keeps the stage's retention: the same days as the stage bucket.
    expect(bucket.LifecycleConfiguration).toEqual(resource('BackupBucket').Properties.LifecycleConfiguration);
    const physical = (bucket.LifecycleConfiguration.Rules as Cfn[]).find(
      (rule) => rule.Id === 'physical-archive-stays-standard',
    );
    expect(physical).toMatchObject({ Prefix: 'backups/~cluster/' });
    expect(physical?.Transitions).toBeUndefined();
  });

  it('denies plain HTTP, old TLS and uploads that ask for anything but SSE-KMS, as the stage bucket does', () => {
    const strip = (statements: Cfn[]) => statements.map(({ Resource: _, ...s }) => s);
    const own = companion.Resources.SecondaryBucketPolicy.Properties;
    expect(own.Bucket).toEqual({ Ref: 'SecondaryBucket' });
    expect(strip(own.PolicyDocument.Statement)).toEqual(
      strip(resource('BackupBucketPolicy').Properties.PolicyDocument.Statement),
    );
    for (const s of own.PolicyDocument.Statement as Cfn[])
      expect(JSON.stringify(s.Resource)).toContain('SecondaryBucket');
  });

  it('prints the parameters for the deploy command, and refuses a stage with no second bucket', async () => {
    const failed = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'deploy/secondary-bucket-parameters.ts'), 'prod'],
      { cwd: ROOT },
    ).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({
      code: 2,
      stderr: 'config/prod.yml: stores.secondary: the stage has no second bucket\n',
    });
  });
});
