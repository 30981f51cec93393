import type { Config } from '../lib/config.js';
import { ConfigError } from '../lib/domain/errors.js';
import { clusterPrefix } from '../lib/domain/physical-layout.js';
import { SERVICE } from '../lib/state-machines.js';

/**
 * A deployed stage's second bucket (config `stores.secondary`): geographic redundancy for a
 * cloud-hosted database, in another region than the stack's.
 *
 * A CloudFormation stack lives in one region, so the bucket and its key cannot be resources of
 * the stage's stack: deploy/secondary-bucket.yml creates them in their own region (README,
 * "A second bucket in another region"), with the stage bucket's protections, and this stack
 * grants its roles what each needs there. The key is a key of that region under an alias the
 * config names, not the stage key made multi-Region (that would replace the stage key, which
 * every stored backup is encrypted under): the grants name the key by its alias
 * (`kms:ResourceAliases`), since this stack cannot know its ARN.
 */

type Cfn = Record<string, unknown>;

/** What the stack needs to know of the second bucket. */
export interface SecondaryStore {
  readonly bucketName: string;
  readonly region: string;
  /** The store's keys under the bucket, for `s3:prefix` conditions, and as an object ARN suffix. */
  readonly storePrefixes: readonly string[];
  readonly storeObjects: string;
  /** The cluster's physical archive under the store (`<prefix>/~cluster/<cluster>/`): the WAL pusher's part. */
  readonly archivePrefixes: readonly string[];
  readonly archiveObjects: string;
  /** The alias of the second bucket's key, in its region (SSE-KMS and client-side encryption). */
  readonly kmsAlias: string;
  /** The companion stack, by the name the README's command gives it. */
  readonly stackName: string;
}

/** What a role does on the second bucket: the same as on the stage bucket, for the same code. */
interface SecondaryGrant {
  /** The role's logical id in serverless.yml. */
  readonly role: string;
  /** Bucket-level actions besides ListBucket (which every role has, under the store's prefix). */
  readonly bucketActions: readonly string[];
  readonly objectActions: readonly string[];
  /** Whether the role stores objects (data keys made), or only reads them (data keys decrypted). */
  readonly writes: boolean;
  /** The whole store, or the cluster's physical archive alone (the WAL pusher, which never deletes). */
  readonly scope?: 'archive';
  /**
   * Whether the role decrypts pgbp's envelope encryption itself (the keyring resolves the key's
   * alias), or only reads what S3 decrypts for it (manifests, heads): then no DescribeKey and no
   * data keys outside S3, as on the stage key.
   */
  readonly envelope?: false;
}

/**
 * The roles whose code reaches the secondary store, and what they do there; each the same as
 * on the stage bucket (test/deploy/secondary-bucket.test.ts compares them). A function or task
 * that starts to read or write the secondary gets its line here.
 */
export const SECONDARY_GRANTS: readonly SecondaryGrant[] = [
  // The dump, read once and written to both stores (tasks/dump.ts); a failed copy deletes what it stored.
  {
    role: 'DumpTaskRole',
    bucketActions: [],
    objectActions: [
      's3:GetObject',
      's3:PutObject',
      's3:PutObjectTagging',
      's3:DeleteObject',
      's3:AbortMultipartUpload',
    ],
    writes: true,
  },
  // A base backup, read once and written to both (tasks/base-backup.ts); a failed copy deletes what it stored.
  {
    role: 'BaseBackupTaskRole',
    bucketActions: [],
    objectActions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
    writes: true,
  },
  // wal-push stores each WAL file in every store (lib/wal/push.ts), and never deletes.
  {
    role: 'WalPushRole',
    bucketActions: [],
    objectActions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
    writes: true,
    scope: 'archive',
  },
  // A degraded run's backup may be in the secondary alone: its size is judged there.
  { role: 'CheckSizeRole', bucketActions: [], objectActions: ['s3:GetObject'], writes: false },
  // The restore task reads the nearest good copy of a backup (tasks/restore.ts, lib/restore/
  // wiring.ts) and writes the verify report beside the copy it read.
  {
    role: 'RestoreTaskRole',
    bucketActions: [],
    objectActions: ['s3:GetObject', 's3:PutObject'],
    writes: true,
  },
  // The PITR drill reads the nearest good copy of the base backup and, through its wal-fetch, of
  // each WAL segment (tasks/pitr-drill.ts), and writes the drill report beside the copy it read.
  {
    role: 'PitrDrillTaskRole',
    bucketActions: [],
    objectActions: ['s3:GetObject', 's3:PutObject'],
    writes: true,
  },
  // Prepare resolves the backup across both stores (functions/prepare-restore.ts): manifests and heads.
  { role: 'PrepareRestoreRole', bucketActions: [], objectActions: ['s3:GetObject'], writes: false },
  // Thaw restores the copy Prepare chose, which may be the secondary's (functions/thaw-backup.ts).
  {
    role: 'ThawBackupRole',
    bucketActions: [],
    objectActions: ['s3:GetObject', 's3:RestoreObject'],
    writes: false,
    envelope: false,
  },
  // Retention per store, by the store's own rules (functions/apply-retention.ts).
  {
    role: 'ApplyRetentionRole',
    bucketActions: ['s3:GetBucketObjectLockConfiguration', 's3:ListBucketMultipartUploads'],
    objectActions: [
      's3:GetObject',
      's3:DeleteObject',
      's3:GetObjectTagging',
      's3:PutObjectTagging',
      's3:GetObjectRetention',
      's3:GetObjectLegalHold',
      's3:AbortMultipartUpload',
    ],
    writes: false,
  },
];

function fail(file: string, path: string, message: string): never {
  throw new ConfigError(`${file}: ${path}: ${message}`);
}

/** The alias the README's companion stack creates for a stage's second bucket's key. */
export function secondaryKeyAlias(stage: string): string {
  return `alias/${SERVICE}-${stage}-secondary`;
}

/**
 * The second bucket of a deployable stage, or undefined when it has none; ConfigError naming
 * the file and the key of a secondary the stack cannot grant.
 */
export function secondaryStore(
  config: Config,
  configFile: string,
  stage: { readonly bucketName: string; readonly region: string },
): SecondaryStore | undefined {
  const own = config.stores.secondary;
  if (!own) return undefined;
  const path = 'stores.secondary';
  const url = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(own.url);
  if (!url?.[1]) {
    fail(
      configFile,
      `${path}.url`,
      'must be s3://bucket/prefix on a deployed stage: the tasks run on Fargate and reach no directory of the database host',
    );
  }
  const bucketName = url[1];
  if (bucketName === stage.bucketName) {
    fail(
      configFile,
      `${path}.url`,
      `names the stage bucket ${bucketName}: a second copy must be in a bucket of its own, which is not lost with the first`,
    );
  }
  const region = own.region ?? stage.region;
  if (region !== stage.region && config.aws.network?.endpoints) {
    fail(
      configFile,
      `${path}.region`,
      `is ${region}, and the tasks reach AWS through VPC endpoints of ${stage.region} alone (aws.network.endpoints, no NAT): a bucket and a key in another region need a route out (a NAT gateway) instead`,
    );
  }
  const expected = secondaryKeyAlias(config.stage);
  // The stage's own kmsKeyId and encryption name the stage key, which is not in that region.
  if (own.kmsKeyId === undefined) {
    fail(
      configFile,
      `${path}.kmsKeyId`,
      `is required: the second bucket is encrypted under a key of its own region (${expected}, made by deploy/secondary-bucket.yml), not the stage key`,
    );
  }
  if (!own.kmsKeyId.startsWith('alias/')) {
    fail(
      configFile,
      `${path}.kmsKeyId`,
      `must be an alias (${expected}): the stack grants the key by its alias, whose ARN it cannot know`,
    );
  }
  if (config.encryption && own.encryption?.kmsKeyId !== own.kmsKeyId) {
    fail(
      configFile,
      `${path}.encryption`,
      `must be { kmsKeyId: ${own.kmsKeyId} }: the stage encrypts every data object on the client, and the second bucket's copies go under its own key`,
    );
  }
  const prefix = (url[2] ?? '').replace(/^\/+|\/+$/g, '');
  const archive = clusterPrefix(prefix, config.wal.cluster);
  return {
    bucketName,
    region,
    storePrefixes: prefix ? [`${prefix}/`, `${prefix}/*`] : ['*'],
    storeObjects: prefix ? `${prefix}/*` : '*',
    archivePrefixes: [`${archive}/`, `${archive}/*`],
    archiveObjects: `${archive}/*`,
    kmsAlias: own.kmsKeyId,
    stackName: `${SERVICE}-${config.stage}-secondary`,
  };
}

/** One policy per role in {@link SECONDARY_GRANTS}: the second bucket and its key, as narrowly as the stage's. */
export function secondaryPolicies(store: SecondaryStore, stage: string): Record<string, Cfn> {
  const bucketArn = { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${store.bucketName}` };
  const objectsArn = (under: string) => ({
    'Fn::Sub': `arn:\${AWS::Partition}:s3:::${store.bucketName}/${under}`,
  });
  // Any key of that region and account, but only the one under the second bucket's alias.
  const keyArn = { 'Fn::Sub': `arn:\${AWS::Partition}:kms:${store.region}:\${AWS::AccountId}:key/*` };
  const underAlias = { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': store.kmsAlias } };
  const out: Record<string, Cfn> = {};
  for (const grant of SECONDARY_GRANTS) {
    const dataKeys = grant.writes ? ['kms:GenerateDataKey', 'kms:Decrypt'] : ['kms:Decrypt'];
    const archive = grant.scope === 'archive';
    const statements: Cfn[] = [
      {
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: bucketArn,
        Condition: {
          StringLike: { 's3:prefix': [...(archive ? store.archivePrefixes : store.storePrefixes)] },
        },
      },
      ...(grant.bucketActions.length > 0
        ? [{ Effect: 'Allow', Action: [...grant.bucketActions], Resource: bucketArn }]
        : []),
      {
        Effect: 'Allow',
        Action: [...grant.objectActions],
        Resource: objectsArn(archive ? store.archiveObjects : store.storeObjects),
      },
      // The bucket's SSE-KMS: S3 of that region asks for the caller.
      {
        Effect: 'Allow',
        Action: dataKeys,
        Resource: keyArn,
        Condition: {
          ...underAlias,
          StringEquals: { 'kms:ViaService': `s3.${store.region}.amazonaws.com` },
        },
      },
      ...(grant.envelope === false
        ? []
        : [
            // pgbp's envelope encryption: data keys only for objects of this stage.
            {
              Effect: 'Allow',
              Action: dataKeys,
              Resource: keyArn,
              Condition: { ...underAlias, StringEquals: { 'kms:EncryptionContext:pgbp:stage': stage } },
            },
            // The keyring resolves the alias to the key's ARN, which an encrypted message names.
            { Effect: 'Allow', Action: 'kms:DescribeKey', Resource: keyArn, Condition: underAlias },
          ]),
      // As on the stage bucket: only retention removes archived WAL.
      ...(archive
        ? [
            {
              Effect: 'Deny',
              Action: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
              Resource: [bucketArn, objectsArn('*')],
            },
          ]
        : []),
    ];
    out[`SecondaryStore${grant.role.replace(/Role$/, '')}Policy`] = {
      Type: 'AWS::IAM::Policy',
      Properties: {
        PolicyName: 'secondary-store',
        Roles: [{ Ref: grant.role }],
        PolicyDocument: { Version: '2012-10-17', Statement: statements },
      },
    };
  }
  return out;
}

/** The settings deploy/secondary-bucket.yml needs from the stage, to protect and tier like the stage bucket. */
export interface SecondaryBucketParameters {
  readonly Stage: string;
  readonly BucketName: string;
  readonly KeyAlias: string;
  readonly PhysicalPrefix: string;
  readonly MonthlyArchiveAfterDays: number;
  readonly MonthlyExpireAfterDays: number;
  readonly YearlyArchiveAfterDays: number;
  readonly YearlyExpireAfterDays: number;
  readonly NoncurrentExpireAfterDays: number;
  readonly ObjectLockEnabled: 'true' | 'false';
  readonly ObjectLockMode: string;
  readonly ObjectLockDays: number;
}
