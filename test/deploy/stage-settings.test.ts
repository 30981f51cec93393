import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  DEPLOY_STAGES,
  ecrRepositoryArn,
  INTERFACE_ENDPOINTS,
  secretValueFrom,
  stageSettings,
} from '../../deploy/stage-settings.js';
import { tempDir } from '../support/temp.js';

const ROOT = resolve(import.meta.dirname, '../..');

let scratch: string | undefined;
afterEach(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
  scratch = undefined;
});

/** The parts of a stage config these tests change. */
interface ConfigYaml {
  store: string;
  kmsKeyId?: string;
  connection: { passwordSecretId?: string; passwordSecretFormat?: string };
  defaults: { restore?: Record<string, unknown> };
  databases: Record<string, unknown>[];
  aws: {
    network?: { subnets: string[]; securityGroups: string[]; endpoints?: unknown };
    taskImage?: string;
    logRetentionDays: number;
    taskMemory: number;
    objectLock?: Record<string, unknown>;
  };
}

/** A project root whose config/prod.yml is the real one with `change` applied. */
async function rootWith(change: (config: ConfigYaml) => void): Promise<string> {
  scratch = tempDir('pgbp-settings-');
  const config = parse(await readFile(join(ROOT, 'config/prod.yml'), 'utf8')) as ConfigYaml;
  change(config);
  await mkdir(join(scratch, 'config'));
  await writeFile(join(scratch, 'config/prod.yml'), stringify(config));
  return scratch;
}

/** The prod config with a second bucket in eu-central-1, as deploy/secondary-bucket.yml makes it, changed by `over`. */
function withSecondary(c: ConfigYaml, over: Record<string, unknown>): void {
  const alias = 'alias/pg-backup-pipeline-prod-secondary';
  const secondary: Record<string, unknown> = {
    url: 's3://pg-backup-pipeline-prod-secondary/backups',
    region: 'eu-central-1',
    kmsKeyId: alias,
    encryption: { kmsKeyId: alias, required: true },
    ...over,
  };
  for (const [k, v] of Object.entries(secondary)) if (v === undefined) delete secondary[k];
  (c as unknown as Record<string, unknown>).stores = { primary: { url: c.store }, secondary };
}

describe('stage settings', () => {
  it.each(DEPLOY_STAGES)('resolves config/%s.yml into deploy settings', (stage) => {
    const settings = stageSettings(stage, { root: ROOT });
    expect(settings.stage).toBe(stage);
    expect(settings.configFile).toBe(`config/${stage}.yml`);
    expect(settings.bucketName).toBe(`pg-backup-pipeline-${stage}-backups`);
    expect(settings.kmsAlias).toBe(`alias/pg-backup-pipeline-${stage}`);
    expect(settings.storeObjects).toBe('backups/*');
    expect(settings.configuredDatabases).toBe('global_remit');
  });

  it('turns durations into the seconds Step Functions wants, with room for Fargate start-up in the heartbeat', () => {
    const { asl, task } = stageSettings('prod', { root: ROOT });
    expect(task.heartbeatIntervalSeconds).toBe('60');
    expect(asl.dumpHeartbeatSeconds).toBe('300');
    expect(asl.dumpTimeoutSeconds).toBe(String(6 * 3600));
    expect(asl.backupMaxConcurrency).toBe('4');
  });

  it('archives monthly and yearly backups after their daily duty and expires them behind retention', () => {
    const { lifecycle } = stageSettings('prod', { root: ROOT });
    // 7 dailies: a monthly backup is one of them for a week.
    expect(lifecycle.monthlyArchiveAfterDays).toBe(8);
    expect(lifecycle.yearlyArchiveAfterDays).toBe(8);
    // 12 monthly (a year), 7 yearly (seven years) are kept: the backstop comes later.
    expect(lifecycle.monthlyExpireAfterDays).toBeGreaterThan(365);
    expect(lifecycle.yearlyExpireAfterDays).toBeGreaterThan(7 * 365);
  });

  it('follows the most generous per-database retention, since the bucket rules serve every database', async () => {
    const root = await rootWith((c) => {
      c.databases.push({ name: 'archive_heavy', retention: { daily: 30, yearly: 10 } });
    });
    const { lifecycle } = stageSettings('prod', { root });
    expect(lifecycle.monthlyArchiveAfterDays).toBe(31);
    expect(lifecycle.yearlyExpireAfterDays).toBe(31 + 11 * 366);
  });

  it('polls a thaw according to the retrieval tier', async () => {
    expect(stageSettings('prod', { root: ROOT }).asl).toMatchObject({
      thawPollSeconds: '900',
      thawPollRounds: '60',
    });
    const root = await rootWith((c) => {
      c.defaults.restore = { thawTier: 'Bulk' };
    });
    expect(stageSettings('prod', { root }).asl).toMatchObject({
      thawPollSeconds: '1800',
      thawPollRounds: '120',
    });
  });

  it('refuses the local stage, which never deploys', () => {
    expect(() => stageSettings('local', { root: ROOT })).toThrow(/does not deploy/);
  });

  it.each([
    ['aws.network', (c: ConfigYaml) => delete c.aws.network],
    ['aws.taskImage', (c: ConfigYaml) => delete c.aws.taskImage],
    ['aws.logRetentionDays', (c: ConfigYaml) => (c.aws.logRetentionDays = 10)],
    ['aws.taskMemory', (c: ConfigYaml) => (c.aws.taskMemory = 512)],
    ['kmsKeyId', (c: ConfigYaml) => (c.kmsKeyId = 'arn:aws:kms:eu-west-1:123456789012:key/abc')],
    ['connection.passwordSecretId', (c: ConfigYaml) => delete c.connection.passwordSecretId],
    ['store', (c: ConfigYaml) => (c.store = 'file:///srv/backups')],
    [
      'stores.secondary.url',
      (c: ConfigYaml) => withSecondary(c, { url: 'file:///nas/pg-backups', region: undefined }),
    ],
    [
      'stores.secondary.url',
      (c: ConfigYaml) => withSecondary(c, { url: 's3://pg-backup-pipeline-prod-backups/second' }),
    ],
    ['stores.secondary.kmsKeyId', (c: ConfigYaml) => withSecondary(c, { kmsKeyId: undefined })],
    [
      'stores.secondary.kmsKeyId',
      (c: ConfigYaml) =>
        withSecondary(c, {
          kmsKeyId: 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
        }),
    ],
    ['stores.secondary.encryption', (c: ConfigYaml) => withSecondary(c, { encryption: undefined })],
    [
      'stores.secondary.region',
      (c: ConfigYaml) => {
        withSecondary(c, {});
        c.aws.network = {
          subnets: ['subnet-0a1b2c3d4e5f60001'],
          securityGroups: ['sg-0a1b2c3d4e5f60001'],
          endpoints: { vpcId: 'vpc-0a1b2c3d4e5f60001', routeTableIds: ['rtb-0a1b2c3d4e5f60001'] },
        };
      },
    ],
    [
      'aws.taskImage',
      (c: ConfigYaml) =>
        (c.aws.taskImage = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/pg-backup-pipeline:prod'),
    ],
    ['aws.objectLock.days', (c: ConfigYaml) => (c.aws.objectLock = { days: 30 })],
    [
      'connection.passwordSecretFormat',
      (c: ConfigYaml) => (c.connection.passwordSecretId = 'ssm:/pgbp/prod/db-password'),
    ],
    [
      'aws.network.subnets[0]',
      (c: ConfigYaml) =>
        (c.aws.network = { subnets: ['subnet-placeholder'], securityGroups: ['sg-0a1b2c3d4e5f60001'] }),
    ],
    [
      'aws.network.securityGroups[0]',
      (c: ConfigYaml) => (c.aws.network = { subnets: ['subnet-0a1b2c3d'], securityGroups: ['sg-12'] }),
    ],
  ])('fails loudly, naming the file and %s, when the config cannot deploy', async (path, change) => {
    const root = await rootWith(change);
    expect(() => stageSettings('prod', { root })).toThrow(
      expect.objectContaining({
        name: 'ConfigError',
        message: expect.stringContaining(`config/prod.yml: ${path}:`),
      }),
    );
  });

  it('deploys a second bucket in another region, granted to the roles that use it, with the companion stack’s parameters', async () => {
    expect(stageSettings('prod', { root: ROOT }).secondary).toBeUndefined();
    const root = await rootWith((c) => withSecondary(c, { retention: { daily: 14, monthly: 3, yearly: 0 } }));
    const { secondary, resources, lifecycle } = stageSettings('prod', { root });
    expect(secondary).toMatchObject({
      bucketName: 'pg-backup-pipeline-prod-secondary',
      region: 'eu-central-1',
      storePrefixes: ['backups/', 'backups/*'],
      kmsAlias: 'alias/pg-backup-pipeline-prod-secondary',
      stackName: 'pg-backup-pipeline-prod-secondary',
    });
    // Its own retention sets its lifecycle days; the stage's Object Lock is its own too.
    expect(secondary?.parameters).toMatchObject({
      BucketName: 'pg-backup-pipeline-prod-secondary',
      PhysicalPrefix: 'backups/~cluster/',
      MonthlyArchiveAfterDays: 15,
      ObjectLockEnabled: 'true',
      ObjectLockMode: 'GOVERNANCE',
      ObjectLockDays: 7,
    });
    expect(lifecycle.monthlyArchiveAfterDays).toBe(8);
    expect(Object.keys(resources.Resources).filter((id) => id.startsWith('SecondaryStore'))).toEqual([
      'SecondaryStoreDumpTaskPolicy',
      'SecondaryStoreBaseBackupTaskPolicy',
      'SecondaryStoreWalPushPolicy',
      'SecondaryStoreCheckSizePolicy',
      'SecondaryStoreRestoreTaskPolicy',
      'SecondaryStorePitrDrillTaskPolicy',
      'SecondaryStorePrepareRestorePolicy',
      'SecondaryStoreThawBackupPolicy',
      'SecondaryStoreApplyRetentionPolicy',
    ]);
  });

  it('grants image pulls from the ECR repository of the image only', () => {
    expect(ecrRepositoryArn('123456789012.dkr.ecr.eu-west-1.amazonaws.com/pg-backup-pipeline:prod')).toBe(
      'arn:aws:ecr:eu-west-1:123456789012:repository/pg-backup-pipeline',
    );
    expect(ecrRepositoryArn('ghcr.io/acme/pgbp:1')).toBeUndefined();
  });

  it('injects the password field of a JSON secret, or a plain secret whole, and reads SSM with GetParameters', async () => {
    const prod = stageSettings('prod', { root: ROOT });
    expect(prod.dbPassword.valueFrom).toEqual({
      'Fn::Sub':
        // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation's Fn::Sub syntax
        'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:pg-backup-pipeline/prod/db-password:password::',
    });
    expect(secretValueFrom('arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf', 'plain')).toBe(
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf',
    );
    const root = await rootWith((c) => {
      c.connection.passwordSecretId = 'ssm:/pgbp/prod/db-password';
      c.connection.passwordSecretFormat = 'plain';
    });
    const ssm = stageSettings('prod', { root });
    expect(ssm.dbPassword.readStatement).toMatchObject({ Action: ['ssm:GetParameters'] });
    expect(ssm.slackWebhook.readStatement).toMatchObject({ Action: ['secretsmanager:GetSecretValue'] });
  });

  it('turns Object Lock on for prod by default, in governance mode, for the shortest daily retention', async () => {
    expect(stageSettings('prod', { root: ROOT }).objectLock).toEqual({
      enabled: 'true',
      mode: 'GOVERNANCE',
      days: 7,
    });
    expect(stageSettings('dev', { root: ROOT }).objectLock.enabled).toBe('false');
    const root = await rootWith((c) => {
      delete c.aws.objectLock;
      c.databases.push({ name: 'short_lived', retention: { daily: 3 } });
    });
    expect(stageSettings('prod', { root }).objectLock).toEqual({
      enabled: 'true',
      mode: 'GOVERNANCE',
      days: 3,
    });
    const off = await rootWith((c) => {
      c.aws.objectLock = { enabled: false };
    });
    expect(stageSettings('prod', { root: off }).objectLock.enabled).toBe('false');
  });

  it('creates the VPC endpoints private task subnets need only when the config asks for them', async () => {
    expect(
      Object.keys(stageSettings('prod', { root: ROOT }).resources.Resources).filter((k) =>
        k.includes('Endpoint'),
      ),
    ).toEqual([]);
    const root = await rootWith((c) => {
      if (c.aws.network)
        c.aws.network.endpoints = {
          vpcId: 'vpc-0a1b2c3d4e5f60001',
          routeTableIds: ['rtb-0a1b2c3d4e5f60001'],
        };
    });
    const { Resources } = stageSettings('prod', { root }).resources;
    const endpoints = Object.values(Resources).filter((r) => r.Type === 'AWS::EC2::VPCEndpoint') as {
      Properties: Record<string, unknown>;
    }[];
    const services = endpoints.map(
      (e) => (e.Properties.ServiceName as { 'Fn::Sub': string })['Fn::Sub'].split('}.')[1],
    );
    expect(services.sort()).toEqual([...INTERFACE_ENDPOINTS, 's3'].sort());
    for (const e of endpoints) {
      if (e.Properties.VpcEndpointType === 'Gateway') {
        expect(e.Properties.RouteTableIds).toEqual(['rtb-0a1b2c3d4e5f60001']);
      } else {
        expect(e.Properties).toMatchObject({
          SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'],
          PrivateDnsEnabled: true,
          SecurityGroupIds: [{ Ref: 'VpcEndpointSecurityGroup' }],
        });
      }
    }
    expect(Resources.VpcEndpointSecurityGroup?.Properties).toMatchObject({
      VpcId: 'vpc-0a1b2c3d4e5f60001',
      SecurityGroupIngress: [
        { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, SourceSecurityGroupId: 'sg-0a1b2c3d4e5f60001' },
      ],
    });
  });

  it('lets the restore task read a configured drill server password, and nothing when drills use a scratch server', async () => {
    expect(stageSettings('prod', { root: ROOT }).resources.Resources.DrillServerSecretPolicy).toBeUndefined();
    const root = await rootWith((c) => {
      (c as unknown as Record<string, unknown>).drill = {
        target: 'server',
        server: { host: 'drill.internal', passwordSecretId: 'pg-backup-pipeline/prod/drill-password' },
      };
    });
    expect(stageSettings('prod', { root }).resources.Resources.DrillServerSecretPolicy).toMatchObject({
      Type: 'AWS::IAM::Policy',
      Properties: {
        Roles: [{ Ref: 'RestoreTaskRole' }],
        PolicyDocument: { Statement: [{ Action: ['secretsmanager:GetSecretValue'] }] },
      },
    });
  });
});
