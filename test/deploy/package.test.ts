import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { IAMClient } from '@aws-sdk/client-iam';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
} from '@aws-sdk/client-kms';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BACKUP_AGE_METRIC,
  FUNCTION_KEYS,
  stageSettings,
  WAL_LAG_METRIC,
} from '../../deploy/stage-settings.js';
import { loadConfig } from '../../lib/config.js';
import { ALERTED_ERRORS_METRIC } from '../../lib/platform/lambda.js';
import { METRIC_NAMESPACE } from '../../lib/platform/metrics.js';
import { S3Store } from '../../lib/storage/s3-store.js';
import { allStates, type Definition, MACHINE_NAMES, MACHINES } from '../statemachines/asl.js';
import { createUser, type EnforcingMoto, resolvePolicy, startEnforcingMoto } from '../support/moto-iam.js';
import { aslActions, COMMAND_ACTIONS, grantsOf, sdkCommands } from './iam-coverage.js';
import { type PackagedStack, packageStack } from './package-stack.js';

/**
 * `serverless package --stage prod`, run once for this file, offline and with no AWS account
 * (dummy credentials; no call is made), then the generated CloudFormation read as data.
 */

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const config = loadConfig(join(ROOT, 'config/prod.yml'));
const settings = stageSettings('prod', { root: ROOT });

// biome-ignore lint/suspicious/noExplicitAny: the generated CloudFormation, read as untyped JSON
type Cfn = Record<string, any>;
let template: {
  Resources: Record<string, Cfn>;
  Outputs: Record<string, Cfn>;
  Conditions?: Record<string, Cfn>;
};
let packageDir: string;

function resources(type: string): [string, Cfn][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}

function resource(logicalId: string): Cfn {
  const r = template.Resources[logicalId];
  if (!r) throw new Error(`no resource ${logicalId} in the template`);
  return r;
}

const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** Each function package: its entries and its bundle's size and AWS SDK imports (python3 runs moto anyway). */
async function readPackages(
  keys: readonly string[],
): Promise<Record<string, { entries: string[]; bundleBytes: number; sdkImports: string[]; code: string }>> {
  const script = `
import json, re, sys, zipfile
out = {}
for key in sys.argv[2:]:
    z = zipfile.ZipFile(f"{sys.argv[1]}/{key}.zip")
    names = z.namelist()
    bundles = [n for n in names if n.startswith("functions/") and n.endswith(".mjs")]
    code = z.read(bundles[0]).decode() if bundles else ""
    out[key] = {"entries": names, "bundleBytes": len(code.encode()), "code": code, "sdkImports": sorted(set(re.findall(r'from\\s*"(@aws-sdk/[^"]+)"', code)))}
print(json.dumps(out))
`;
  const { stdout } = await run('python3', ['-c', script, packageDir, ...keys], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout);
}

let packaged: PackagedStack | undefined;

beforeAll(async () => {
  packaged = await packageStack('prod');
  template = packaged.template;
  packageDir = packaged.packageDir;
}, 120_000);

afterAll(async () => {
  await packaged?.remove();
});

describe('the packaged prod stack: functions and roles', () => {
  it('packages every Lambda function as arm64 nodejs24.x with a role of its own', () => {
    const functions = resources('AWS::Lambda::Function');
    expect(functions.map(([id]) => id).sort()).toEqual(
      FUNCTION_KEYS.map((k) => `${k.charAt(0).toUpperCase()}${k.slice(1)}LambdaFunction`).sort(),
    );
    const roles = new Set<string>();
    for (const [, f] of functions) {
      expect(f.Properties.Runtime).toBe('nodejs24.x');
      expect(f.Properties.Architectures).toEqual(['arm64']);
      expect(f.Properties.Environment.Variables.PGBP_CONFIG).toBe('config/prod.yml');
      expect(f.Properties.Environment.Variables.PGBP_ALERTS_TOPIC_ARN).toEqual({ Ref: 'AlertsTopic' });
      roles.add(f.Properties.Role['Fn::GetAtt'][0]);
    }
    expect(roles.size).toBe(functions.length);
    expect(template.Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it('gives no role a wildcard action, nor a wildcard resource where the resource is known', () => {
    // IAM knows no resource for these: "*" is the only resource they accept.
    const noResourceLevel = new Set(['ecr:GetAuthorizationToken']);
    const problems: string[] = [];
    for (const [id, role] of resources('AWS::IAM::Role')) {
      for (const policy of role.Properties.Policies ?? []) {
        for (const statement of asArray(policy.PolicyDocument.Statement) as Cfn[]) {
          if (statement.Effect !== 'Allow') continue;
          const actions = asArray(statement.Action) as string[];
          for (const action of actions) if (action.includes('*')) problems.push(`${id}: action ${action}`);
          const wildcard = asArray(statement.Resource).some((r) => r === '*');
          // ListTasks names no resource: a condition holds it to the stack's cluster.
          const inStackCluster =
            actions.every((a) => a === 'ecs:ListTasks') &&
            JSON.stringify(statement.Condition) ===
              JSON.stringify({ ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': ['EcsCluster', 'Arn'] } } });
          if (wildcard && !inStackCluster && !actions.every((a) => noResourceLevel.has(a))) {
            problems.push(`${id}: ${actions.join(', ')} on *`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('runs Prepare in the tasks’ network with the database password, to ask the server whether a target exists', () => {
    const prepare = template.Resources.PrepareRestoreLambdaFunction as Cfn;
    expect(prepare.Properties.VpcConfig).toEqual({
      SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'],
      SecurityGroupIds: ['sg-0a1b2c3d4e5f60001'],
    });
    const role = template.Resources[prepare.Properties.Role['Fn::GetAtt'][0]] as Cfn;
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toContain('AWSLambdaVPCAccessExecutionRole');
    const statements = (role.Properties.Policies as Cfn[]).flatMap(
      (p) => asArray(p.PolicyDocument.Statement) as Cfn[],
    );
    const reads = statements.filter((st) => asArray(st.Action).includes('secretsmanager:GetSecretValue'));
    expect(JSON.stringify(reads.map((st) => st.Resource))).toContain('pg-backup-pipeline/prod/db-password');
  });

  it('runs the WAL watch in the database’s network with the database password, reading only the cluster’s archive', () => {
    const check = resource('CheckWalLambdaFunction');
    expect(check.Properties.VpcConfig).toEqual({
      SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'],
      SecurityGroupIds: ['sg-0a1b2c3d4e5f60001'],
    });
    const role = resource(check.Properties.Role['Fn::GetAtt'][0]);
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toContain('AWSLambdaVPCAccessExecutionRole');
    expect(grantsOf(role, 'secretsmanager:GetSecretValue')).toHaveLength(1);
    expect(grantsOf(role, 's3:GetObject').map((s) => s.Resource)).toEqual([
      { 'Fn::Sub': `\${BackupBucket.Arn}/backups/~cluster/main/*` },
    ]);
    expect(grantsOf(role, 's3:DeleteObject')).toEqual([]);
    expect(grantsOf(role, 's3:PutObject')).toEqual([]);
  });

  it('gives the database host a WAL push role that stores and reads the cluster’s WAL and never deletes', () => {
    const role = resource('WalPushRole');
    expect(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal).toEqual({
      Service: 'ec2.amazonaws.com',
    });
    expect(resource('WalPushInstanceProfile').Properties.Roles).toEqual([{ Ref: 'WalPushRole' }]);
    const archive = { 'Fn::Sub': `\${BackupBucket.Arn}/backups/~cluster/main/*` };
    expect(grantsOf(role, 's3:PutObject').map((s) => s.Resource)).toEqual([archive]);
    expect(grantsOf(role, 's3:GetObject').map((s) => s.Resource)).toEqual([archive]);
    expect(grantsOf(role, 's3:ListBucket')[0]?.Condition).toEqual({
      StringLike: { 's3:prefix': ['backups/~cluster/main/', 'backups/~cluster/main/*'] },
    });
    expect(grantsOf(role, 's3:DeleteObject')).toEqual([]);
    const statements = role.Properties.Policies.flatMap((p: Cfn) => p.PolicyDocument.Statement) as Cfn[];
    expect(statements.find((s) => s.Effect === 'Deny')).toMatchObject({
      Action: expect.arrayContaining(['s3:DeleteObject', 's3:DeleteObjectVersion']),
    });
    expect(template.Outputs.WalPushRoleArn?.Value).toEqual({ 'Fn::GetAtt': ['WalPushRole', 'Arn'] });
  });

  it('includes the stage config and a minified ESM bundle, with the AWS SDK left to the runtime, in each function package', async () => {
    const packages = await readPackages(FUNCTION_KEYS);
    for (const key of FUNCTION_KEYS) {
      const pkg = packages[key];
      expect(pkg?.entries, key).toContain('config/prod.yml');
      expect(
        pkg?.entries.some((e) => /^functions\/[a-z-]+\.mjs$/.test(e)),
        key,
      ).toBe(true);
      expect(
        pkg?.entries.some((e) => e.startsWith('node_modules/')),
        key,
      ).toBe(false);
      expect(pkg?.bundleBytes, key).toBeLessThan(1024 * 1024);
    }
    // The SDK clients are imported, not bundled: at least the store's S3 client somewhere.
    expect(Object.values(packages).flatMap((p) => p.sdkImports)).toContain('@aws-sdk/client-s3');
  });

  it('lets the Slack forwarder dead-letter what Slack refuses', () => {
    const forwarder = resource('SlackForwarderLambdaFunction');
    expect(forwarder.Properties.DeadLetterConfig).toEqual({
      TargetArn: { 'Fn::GetAtt': ['SlackForwarderDeadLetterQueue', 'Arn'] },
    });
    expect(resource('SlackForwarderDeadLetterQueue').Type).toBe('AWS::SQS::Queue');
    const subscriptions = resources('AWS::SNS::Subscription').map(([, s]) => s.Properties);
    expect(subscriptions).toContainEqual(
      expect.objectContaining({ Protocol: 'lambda', TopicArn: { Ref: 'AlertsTopic' } }),
    );
  });
});

describe('the packaged prod stack: storage and encryption', () => {
  it('creates the stage KMS key with rotation, under the configured alias', () => {
    expect(resource('BackupKey').Properties.EnableKeyRotation).toBe(true);
    expect(resource('BackupKeyAlias').Properties).toEqual({
      AliasName: config.kmsKeyId,
      TargetKeyId: { Ref: 'BackupKey' },
    });
  });

  /** The roles that handle data objects, and so make and unwrap data keys under the stage key. */
  const DATA_ROLES = [
    'DumpTaskRole',
    'RestoreTaskRole',
    'BaseBackupTaskRole',
    'PitrDrillTaskRole',
    'WalPushRole',
  ] as const;
  const kmsStatements = (role: Cfn): Cfn[] =>
    (role.Properties.Policies as Cfn[])
      .flatMap((p) => asArray(p.PolicyDocument.Statement) as Cfn[])
      .filter((s) => (asArray(s.Action) as string[]).some((a) => a.startsWith('kms:')));

  it('grants data keys to the tasks and the WAL pusher through S3, or for this stage’s objects only', () => {
    const stageKey = { 'Fn::GetAtt': ['BackupKey', 'Arn'] };
    for (const id of DATA_ROLES) {
      const statements = kmsStatements(resource(id));
      const dataKeys = statements.filter((s) =>
        (asArray(s.Action) as string[]).some((a) => a === 'kms:GenerateDataKey' || a === 'kms:Decrypt'),
      );
      // A client-side statement (no service in between) binds the call to this stage's context.
      const clientSide = dataKeys.filter((s) => !s.Condition?.StringEquals?.['kms:ViaService']);
      expect(clientSide, id).toEqual([
        {
          Effect: 'Allow',
          Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
          Resource: stageKey,
          Condition: { StringEquals: { 'kms:EncryptionContext:pgbp:stage': 'prod' } },
        },
      ]);
      // The others only as S3 (the bucket's SSE-KMS) or SNS (the alerts topic) ask for them.
      for (const s of dataKeys.filter((d) => !clientSide.includes(d))) {
        expect(s.Resource, id).toEqual(stageKey);
        expect(Object.keys(s.Condition), id).toEqual(['StringEquals']);
        for (const service of asArray(s.Condition.StringEquals['kms:ViaService']) as string[])
          expect(service, id).toMatch(/^(s3|sns)\.eu-west-1\.amazonaws\.com$/);
      }
      expect(dataKeys.length, id).toBe(2);
      // Describing the key (the keyring resolves the alias) gives no data key away.
      expect(
        statements.filter((s) => !dataKeys.includes(s)),
        id,
      ).toEqual([{ Effect: 'Allow', Action: 'kms:DescribeKey', Resource: stageKey }]);
    }
    // The WAL pusher, with its context condition, still cannot delete anything.
    const walPush = resource('WalPushRole');
    expect(grantsOf(walPush, 's3:DeleteObject')).toEqual([]);
    expect(grantsOf(walPush, 's3:DeleteObjectVersion')).toEqual([]);
  });

  it('grants no role any KMS key but the stage’s own', () => {
    const problems: string[] = [];
    for (const [id, role] of resources('AWS::IAM::Role')) {
      for (const s of kmsStatements(role)) {
        if (s.Effect !== 'Allow') continue;
        for (const r of asArray(s.Resource))
          if (JSON.stringify(r) !== JSON.stringify({ 'Fn::GetAtt': ['BackupKey', 'Arn'] }))
            problems.push(`${id}: ${JSON.stringify(s.Action)} on ${JSON.stringify(r)}`);
        const context = s.Condition?.StringEquals?.['kms:EncryptionContext:pgbp:stage'];
        if (context !== undefined && context !== 'prod') problems.push(`${id}: objects of stage ${context}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('encrypts the bucket with SSE-KMS under the stage key, versions it and blocks public access', () => {
    const bucket = resource('BackupBucket').Properties;
    expect(bucket.BucketName).toBe('pg-backup-pipeline-prod-backups');
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      {
        ServerSideEncryptionByDefault: {
          SSEAlgorithm: 'aws:kms',
          KMSMasterKeyID: { 'Fn::GetAtt': ['BackupKey', 'Arn'] },
        },
        BucketKeyEnabled: true,
      },
    ]);
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
  });

  it.each(['BackupBucket', 'BackupBucketPolicy', 'BackupKey', 'BackupKeyAlias'])(
    'keeps %s through serverless remove and through a replacement',
    (id) => {
      expect(resource(id).DeletionPolicy).toBe('Retain');
      expect(resource(id).UpdateReplacePolicy).toBe('Retain');
    },
  );

  it('denies plain-HTTP access and uploads that ask for anything but SSE-KMS', () => {
    const statements = resource('BackupBucketPolicy').Properties.PolicyDocument.Statement as Cfn[];
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: 's3:*',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: 's3:PutObject',
        Condition: expect.objectContaining({
          StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' },
        }),
      }),
    );
  });

  it('aborts incomplete multipart uploads after a day and archives tagged monthly and yearly backups', () => {
    const rules = resource('BackupBucket').Properties.LifecycleConfiguration.Rules as Cfn[];
    expect(rules).toContainEqual(
      expect.objectContaining({
        Status: 'Enabled',
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
      }),
    );
    const byTier = (tier: string) =>
      rules.find((r) => r.TagFilters?.[0]?.Key === 'tier' && r.TagFilters[0].Value === tier);
    expect(byTier('monthly')).toMatchObject({
      Status: 'Enabled',
      Transitions: [
        { StorageClass: 'GLACIER', TransitionInDays: settings.lifecycle.monthlyArchiveAfterDays },
      ],
      ExpirationInDays: settings.lifecycle.monthlyExpireAfterDays,
    });
    expect(byTier('yearly')).toMatchObject({
      Status: 'Enabled',
      Transitions: [
        { StorageClass: 'DEEP_ARCHIVE', TransitionInDays: settings.lifecycle.yearlyArchiveAfterDays },
      ],
      ExpirationInDays: settings.lifecycle.yearlyExpireAfterDays,
    });
    // The recovery guide: monthly kept a year, yearly seven years; expiry never comes sooner.
    expect(byTier('monthly')?.ExpirationInDays).toBeGreaterThanOrEqual(365);
    expect(byTier('yearly')?.ExpirationInDays).toBeGreaterThanOrEqual(7 * 365);
    expect(byTier('daily')).toBeUndefined();
  });

  it('never transitions the physical archive: WAL and base backups stay where a replay reads them at once', () => {
    const rules = resource('BackupBucket').Properties.LifecycleConfiguration.Rules as Cfn[];
    const physical = rules.find((r) => r.Id === 'physical-archive-stays-standard');
    expect(physical).toMatchObject({ Status: 'Enabled', Prefix: 'backups/~cluster/' });
    expect(physical?.Transitions).toBeUndefined();
    expect(physical?.ExpirationInDays).toBeUndefined();
    // Every rule that transitions selects by the tier tag, which no WAL or base backup object carries.
    for (const rule of rules.filter((r) => r.Transitions || r.Transition)) {
      expect(
        rule.TagFilters?.map((t: Cfn) => t.Key),
        rule.Id,
      ).toEqual(['tier']);
      expect(rule.Prefix ?? '', rule.Id).toBe('');
    }
  });

  it('locks prod backups in governance mode for the daily retention', () => {
    expect(template.Conditions?.ObjectLockOn).toEqual({ 'Fn::Equals': ['true', 'true'] });
    const bucket = resource('BackupBucket').Properties;
    expect(bucket.ObjectLockEnabled['Fn::If'][0]).toBe('ObjectLockOn');
    expect(bucket.ObjectLockConfiguration['Fn::If'][1]).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: config.defaults.retention.daily } },
    });
  });
});

describe('the packaged prod stack: schedules, state machines and alarms', () => {
  it('schedules the daily backup, the hourly staleness check, the monthly drills and the weekly base backup in the configured time zone', () => {
    const schedules = Object.fromEntries(
      resources('AWS::Scheduler::Schedule').map(([, s]) => [
        JSON.stringify(s.Properties.Target.Arn),
        s.Properties,
      ]),
    );
    expect(Object.keys(schedules)).toHaveLength(6);
    const expect1 = (target: unknown, expression: string) =>
      expect(schedules[JSON.stringify(target)]).toMatchObject({
        ScheduleExpression: expression,
        ScheduleExpressionTimezone: config.schedules.timezone,
        State: 'ENABLED',
      });
    expect1({ Ref: 'BackupStateMachine' }, config.schedules.backup);
    expect1({ 'Fn::GetAtt': ['CheckStalenessLambdaFunction', 'Arn'] }, config.schedules.staleness);
    expect1({ Ref: 'RestoreDrillStateMachine' }, config.schedules.drill);
    expect1({ Ref: 'BaseBackupStateMachine' }, config.schedules.baseBackup);
    expect1({ Ref: 'PitrDrillStateMachine' }, config.schedules.pitrDrill);
    expect1({ 'Fn::GetAtt': ['CheckWalLambdaFunction', 'Arn'] }, 'rate(5 minutes)');
  });

  it('alarms when the WAL archive lags the server by more than the stage RPO, treating missing data as breaching', () => {
    expect(WAL_LAG_METRIC).toEqual({ namespace: METRIC_NAMESPACE, name: 'WalArchiveLagSeconds' });
    const alarms = resources('AWS::CloudWatch::Alarm')
      .map(([, a]) => a.Properties)
      .filter((a) => a.MetricName === WAL_LAG_METRIC.name);
    expect(alarms).toHaveLength(1);
    expect(alarms[0]).toMatchObject({
      Namespace: METRIC_NAMESPACE,
      Dimensions: [
        { Name: 'Stage', Value: 'prod' },
        { Name: 'Cluster', Value: config.wal.cluster },
      ],
      Threshold: config.wal.rpo / 1000,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: 'AlertsTopic' }],
    });
    // Two five-minute runs in each period: a single late run does not alarm.
    expect(alarms[0]?.Period).toBeGreaterThanOrEqual(600);
  });

  it.each(MACHINE_NAMES)(
    'defines the %s state machine from its ASL file, every placeholder substituted',
    (name) => {
      const machine = resource(MACHINES[name].logicalId);
      const definition = machine.Properties.DefinitionString;
      expect(typeof definition).toBe('string');
      const used = new Set(
        [...(definition as string).matchAll(/\$\{([A-Za-z][A-Za-z0-9]*)\}/g)].map((m) => m[1]),
      );
      expect(Object.keys(machine.Properties.DefinitionSubstitutions).sort()).toEqual([...used].sort());
      expect(machine.Properties.RoleArn['Fn::GetAtt'][0]).toBe(`${MACHINES[name].logicalId}Role`);
    },
  );

  it.each(MACHINE_NAMES)('alarms to the alerts topic when a %s execution fails', (name) => {
    const alarm = resources('AWS::CloudWatch::Alarm')
      .map(([, a]) => a.Properties)
      .find(
        (a) => a.MetricName === 'ExecutionsFailed' && a.Dimensions[0].Value.Ref === MACHINES[name].logicalId,
      );
    expect(alarm).toMatchObject({
      Namespace: 'AWS/States',
      Threshold: 1,
      AlarmActions: [{ Ref: 'AlertsTopic' }],
    });
  });

  it('alarms on the unexpected errors of every Lambda function: Errors less the alerted typed verdicts', () => {
    const alarms = resources('AWS::CloudWatch::Alarm')
      .map(([, a]) => a.Properties)
      .filter((a) => a.Metrics?.some((m: Cfn) => m.MetricStat?.Metric.MetricName === 'Errors'));
    expect(alarms.map((a) => a.Metrics[0].MetricStat.Metric.Dimensions[0].Value.Ref).sort()).toEqual(
      resources('AWS::Lambda::Function')
        .map(([id]) => id)
        .sort(),
    );
    for (const alarm of alarms) {
      const [errors, alerted, unexpected] = alarm.Metrics as Cfn[];
      const fn = errors?.MetricStat.Metric.Dimensions[0].Value;
      expect(errors?.MetricStat.Metric).toMatchObject({ Namespace: 'AWS/Lambda', MetricName: 'Errors' });
      expect(alerted?.MetricStat.Metric).toEqual({
        Namespace: METRIC_NAMESPACE,
        MetricName: ALERTED_ERRORS_METRIC,
        Dimensions: [{ Name: 'Function', Value: fn }],
      });
      expect(unexpected).toMatchObject({ Expression: 'errors - FILL(alerted, 0)', ReturnData: true });
      expect(alarm).toMatchObject({ Threshold: 1, AlarmActions: [{ Ref: 'AlertsTopic' }] });
    }
  });

  it('alarms when a database has no backup younger than the threshold, treating missing data as breaching', () => {
    expect(BACKUP_AGE_METRIC.namespace).toBe(METRIC_NAMESPACE);
    const ageAlarms = resources('AWS::CloudWatch::Alarm')
      .map(([, a]) => a.Properties)
      .filter((a) => a.MetricName === 'BackupAgeHours');
    expect(ageAlarms.map((a) => a.Dimensions)).toEqual(
      config.databases.map((d) => [
        { Name: 'Stage', Value: 'prod' },
        { Name: 'Database', Value: d.name },
      ]),
    );
    for (const alarm of ageAlarms) {
      expect(alarm).toMatchObject({
        Namespace: METRIC_NAMESPACE,
        Threshold: config.defaults.staleAfter / 3_600_000,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'breaching',
        AlarmActions: [{ Ref: 'AlertsTopic' }],
      });
    }
  });

  it('encrypts the alerts topic with the stage key and subscribes the configured addresses', () => {
    expect(resource('AlertsTopic').Properties.KmsMasterKeyId).toEqual({ Ref: 'BackupKey' });
    const emails = resources('AWS::SNS::Subscription')
      .map(([, s]) => s.Properties)
      .filter((s) => s.Protocol === 'email');
    expect(emails).toEqual(
      config.alerts.emails.map((Endpoint) => ({
        TopicArn: { Ref: 'AlertsTopic' },
        Protocol: 'email',
        Endpoint,
      })),
    );
    const keyStatements = resource('BackupKey').Properties.KeyPolicy.Statement as Cfn[];
    expect(keyStatements).toContainEqual(
      expect.objectContaining({ Principal: { Service: 'cloudwatch.amazonaws.com' } }),
    );
  });
});

describe('the packaged prod stack: Fargate', () => {
  it.each([
    ['DumpTaskDefinition', 'DumpTaskLogGroup', 'dist/tasks/dump.mjs'],
    ['RestoreTaskDefinition', 'RestoreTaskLogGroup', 'dist/tasks/restore.mjs'],
  ])(
    'defines %s on Fargate with the configured size and image, the password from Secrets Manager',
    (id, logGroup, entry) => {
      const task = resource(id).Properties;
      expect(task).toMatchObject({
        RequiresCompatibilities: ['FARGATE'],
        NetworkMode: 'awsvpc',
        Cpu: String(config.aws.taskCpu),
        Memory: String(config.aws.taskMemory),
        EphemeralStorage: { SizeInGiB: config.aws.taskEphemeralStorageGiB },
      });
      const [container] = task.ContainerDefinitions;
      expect(container.Image).toBe(config.aws.taskImage);
      expect(container.Image).toMatch(/@sha256:[0-9a-f]{64}$/);
      expect(task.RuntimePlatform).toEqual({ OperatingSystemFamily: 'LINUX', CpuArchitecture: 'ARM64' });
      expect(container.Command).toEqual(['node', entry]);
      expect(container.Environment).toContainEqual({ Name: 'PGBP_CONFIG', Value: 'config/prod.yml' });
      expect(container.Secrets).toEqual([
        {
          Name: 'PGPASSWORD',
          ValueFrom: {
            'Fn::Sub': `arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${config.connection.passwordSecretId}:password::`,
          },
        },
      ]);
      expect(container.Environment.map((e: Cfn) => e.Name)).not.toContain('PGPASSWORD');
      expect(container.LogConfiguration.Options['awslogs-group']).toEqual({ Ref: logGroup });
      expect(resource(logGroup).Properties.RetentionInDays).toBe(config.aws.logRetentionDays);
    },
  );

  it('keeps every log group for the configured retention', () => {
    for (const [id, group] of resources('AWS::Logs::LogGroup')) {
      expect(group.Properties.RetentionInDays, id).toBe(config.aws.logRetentionDays);
    }
  });

  it('lets each state machine start only its own task definition, in the stack cluster', () => {
    const runTask = (roleId: string) =>
      (resource(roleId).Properties.Policies[0].PolicyDocument.Statement as Cfn[]).find(
        (s) => s.Action === 'ecs:RunTask',
      );
    expect(runTask('BackupStateMachineRole')?.Resource['Fn::Sub']).toMatch(
      /task-definition\/pg-backup-pipeline-prod-dump:\*$/,
    );
    expect(runTask('RestoreDrillStateMachineRole')?.Resource['Fn::Sub']).toMatch(
      /task-definition\/pg-backup-pipeline-prod-restore:\*$/,
    );
    expect(runTask('RestoreStateMachineRole')?.Resource['Fn::Sub']).toMatch(
      /task-definition\/pg-backup-pipeline-prod-restore:\*$/,
    );
    expect(runTask('BackupStateMachineRole')?.Condition).toEqual({
      ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': ['EcsCluster', 'Arn'] } },
    });
  });

  it.each(['BackupStateMachineRole', 'RestoreDrillStateMachineRole', 'RestoreStateMachineRole'])(
    'lets %s tag the task RunTask creates and stop the tasks of the stack cluster',
    (roleId) => {
      const statements = resource(roleId).Properties.Policies[0].PolicyDocument.Statement as Cfn[];
      const tasksOfCluster = /:task\/pg-backup-pipeline-prod\/\*$/;
      expect(statements.find((s) => s.Action === 'ecs:TagResource')).toMatchObject({
        Resource: { 'Fn::Sub': expect.stringMatching(tasksOfCluster) },
        Condition: { StringEquals: { 'ecs:CreateAction': 'RunTask' } },
      });
      expect(statements.find((s) => s.Action === 'ecs:StopTask')).toMatchObject({
        Resource: { 'Fn::Sub': expect.stringMatching(tasksOfCluster) },
        Condition: { ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': ['EcsCluster', 'Arn'] } } },
      });
    },
  );
});

describe('the packaged prod stack: every AWS call its code and state machines make is granted', () => {
  /** Each uncovered call: who, what, the missing action. */
  function uncovered(
    who: string,
    roleId: string,
    commands: readonly string[],
    exempt: ReadonlySet<string> = new Set(),
  ) {
    const role = resource(roleId);
    const problems: string[] = [];
    for (const command of commands) {
      if (exempt.has(command)) continue;
      const actions = COMMAND_ACTIONS[command];
      if (!actions) {
        problems.push(`${who}: ${command} has no IAM mapping in test/deploy/iam-coverage.ts`);
        continue;
      }
      for (const action of actions) {
        if (grantsOf(role, action).length === 0)
          problems.push(`${who} (${roleId}): ${command} needs ${action}`);
      }
    }
    return problems;
  }

  // A bundle imports every command of the modules it reaches (the S3 store is one class, the
  // alerter and the secret reader are shared), more than the function sends. What a function
  // does not send is listed here and not granted, on purpose; a command imported and in neither
  // place fails, and so does a listed one the bundle no longer imports.
  const STORE_READS = ['GetObjectCommand', 'HeadObjectCommand', 'ListObjectsV2Command'];
  const STORE_WRITES = [
    'PutObjectCommand',
    'CreateMultipartUploadCommand',
    'UploadPartCommand',
    'CompleteMultipartUploadCommand',
    'AbortMultipartUploadCommand',
  ];
  const STORE_UPKEEP = ['PutObjectTaggingCommand', 'DeleteObjectsCommand', 'GetObjectTaggingCommand'];
  // The stage's secrets live in Secrets Manager; the database password only tasks need.
  const SECRETS = ['GetSecretValueCommand', 'GetParameterCommand'];
  // Incomplete uploads (debris of a killed dump): status counts them, retention aborts them.
  const UPLOAD_DEBRIS = 'ListMultipartUploadsCommand';
  const WRITES_BUT_ABORT = STORE_WRITES.filter((c) => c !== 'AbortMultipartUploadCommand');
  const UNSENT_BY_FUNCTION: Record<(typeof FUNCTION_KEYS)[number], readonly string[]> = {
    checkSize: [...STORE_WRITES, ...STORE_UPKEEP, 'RestoreObjectCommand', UPLOAD_DEBRIS, ...SECRETS],
    applyRetention: [...WRITES_BUT_ABORT, 'RestoreObjectCommand', ...SECRETS],
    checkStaleness: [...STORE_WRITES, ...STORE_UPKEEP, 'RestoreObjectCommand', ...SECRETS],
    notify: [
      ...STORE_READS,
      ...STORE_WRITES,
      ...STORE_UPKEEP,
      'RestoreObjectCommand',
      UPLOAD_DEBRIS,
      ...SECRETS,
    ],
    // It posts to Slack and dead-letters through the Lambda service; its webhook is a Secrets Manager secret.
    slackForwarder: ['PublishCommand', 'GetParameterCommand'],
    // Both answer their state machine, which alerts.
    prepareRestore: [
      ...STORE_WRITES,
      ...STORE_UPKEEP,
      'RestoreObjectCommand',
      'PublishCommand',
      UPLOAD_DEBRIS,
      ...SECRETS,
    ],
    thawBackup: [...STORE_WRITES, ...STORE_UPKEEP, 'PublishCommand', UPLOAD_DEBRIS, ...SECRETS],
    // It reads the archive and asks the server; the password comes from Secrets Manager.
    checkWal: [
      ...STORE_WRITES,
      ...STORE_UPKEEP,
      'RestoreObjectCommand',
      UPLOAD_DEBRIS,
      'GetParameterCommand',
    ],
  };

  it('grants each Lambda function what the SDK commands of its bundle need', async () => {
    const packages = await readPackages(FUNCTION_KEYS);
    const problems: string[] = [];
    let commands = 0;
    for (const key of FUNCTION_KEYS) {
      const fn = resource(`${key.charAt(0).toUpperCase()}${key.slice(1)}LambdaFunction`);
      const found = sdkCommands(packages[key]?.code ?? '');
      commands += found.length;
      const unsent = UNSENT_BY_FUNCTION[key];
      for (const c of unsent)
        if (!found.includes(c)) problems.push(`${key}: lists ${c}, which it no longer imports`);
      problems.push(...uncovered(key, fn.Properties.Role['Fn::GetAtt'][0], found, new Set(unsent)));
    }
    expect(commands, 'SDK commands found in the bundles').toBeGreaterThan(10);
    expect(problems).toEqual([]);
  });

  /**
   * Commands a task's bundle imports with the store (the S3 adapter is one class) that the task
   * never sends; its role does not get them, on purpose. The enforced-IAM test runs what it does send.
   */
  const UNSENT: Record<string, readonly string[]> = {
    // Tier tags are set on upload; thawing and tag repair are the Lambdas' work.
    dump: ['GetObjectTaggingCommand', 'ListMultipartUploadsCommand', 'RestoreObjectCommand'],
    // A restore reads a backup and writes its verify report in one PutObject; it deletes, tags and thaws nothing.
    restore: [
      'AbortMultipartUploadCommand',
      'DeleteObjectsCommand',
      'GetObjectTaggingCommand',
      'ListMultipartUploadsCommand',
      'PutObjectTaggingCommand',
      'RestoreObjectCommand',
    ],
  };

  it.each([
    ['dump', 'DumpTaskDefinition'],
    ['restore', 'RestoreTaskDefinition'],
  ])('grants the %s task what the SDK commands of its bundle need', async (task, definitionId) => {
    const dir = join(packageDir, '..', 'task-bundles');
    // The image's bundle with the SDK left out, so each command it uses is a named import.
    await build({
      entryPoints: [join(ROOT, `tasks/${task}.ts`)],
      outfile: join(dir, `${task}.mjs`),
      bundle: true,
      platform: 'node',
      format: 'esm',
      external: ['@aws-sdk/*', 'pg-native'],
      logLevel: 'silent',
    });
    const found = sdkCommands(await readFile(join(dir, `${task}.mjs`), 'utf8'));
    expect(found).toEqual(expect.arrayContaining(['PutObjectCommand', 'SendTaskSuccessCommand']));
    const definition = resource(definitionId).Properties;
    const [container] = definition.ContainerDefinitions;
    // ECS injects PGPASSWORD from the secret: the code reads the secret itself only without it.
    expect(container.Secrets.map((s: Cfn) => s.Name)).toEqual(['PGPASSWORD']);
    for (const c of UNSENT[task] ?? []) expect(found, `${task} lists ${c}`).toContain(c);
    const exempt = new Set(['GetSecretValueCommand', 'GetParameterCommand', ...(UNSENT[task] ?? [])]);
    expect(uncovered(task, definition.TaskRoleArn['Fn::GetAtt'][0], found, exempt)).toEqual([]);
  });

  it.each(MACHINE_NAMES)('grants the %s state machine what its Task states call', (name) => {
    const machine = resource(MACHINES[name].logicalId).Properties;
    const role = resource(machine.RoleArn['Fn::GetAtt'][0]);
    const substitutions = machine.DefinitionSubstitutions as Record<string, Cfn>;
    const definition = JSON.parse(machine.DefinitionString) as Definition;
    const problems: string[] = [];
    const ofPlaceholder = (value: unknown) => substitutions[String(value).replace(/^\$\{|\}$/g, '')];
    for (const { name: state, state: task } of allStates(definition).filter((e) => e.state.Type === 'Task')) {
      const resourceArn = String(task.Resource);
      const parameters = task.Parameters as Cfn | undefined;
      for (const action of aslActions(resourceArn, parameters)) {
        const grants = grantsOf(role, action);
        if (grants.length === 0) {
          problems.push(`${state}: ${action}`);
          continue;
        }
        const granted = JSON.stringify(grants.map((g) => g.Resource));
        if (action === 'lambda:InvokeFunction') {
          const fn = ofPlaceholder(resourceArn);
          if (!granted.includes(JSON.stringify(fn)))
            problems.push(`${state}: lambda:InvokeFunction on ${JSON.stringify(fn)}`);
        }
        if (action === 'ecs:RunTask' || action === 'iam:PassRole') {
          const taskDefinition = resource(ofPlaceholder(parameters?.TaskDefinition)?.Ref).Properties;
          const needed =
            action === 'ecs:RunTask'
              ? [`task-definition/${taskDefinition.Family}:*`]
              : [JSON.stringify(taskDefinition.TaskRoleArn), JSON.stringify(taskDefinition.ExecutionRoleArn)];
          for (const n of needed) if (!granted.includes(n)) problems.push(`${state}: ${action} on ${n}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('the packaged task roles, enforced by IAM', () => {
  // Created unauthenticated: the bucket, the key and its alias, then a user, its policy and an
  // access key for each role. Every request after these is checked against the caller's policy.
  const ROLES = ['DumpTaskRole', 'RestoreTaskRole'] as const;
  const SETUP_REQUESTS = 3 + 3 * ROLES.length;
  const bucket = settings.bucketName;
  const region = 'us-east-1';
  let moto: EnforcingMoto;
  let keyArn: string;
  const credentials: Record<string, { accessKeyId: string; secretAccessKey: string }> = {};

  const clientConfig = (role?: (typeof ROLES)[number]) => ({
    endpoint: moto.url,
    region,
    credentials: role
      ? (credentials[role] ?? { accessKeyId: '-', secretAccessKey: '-' })
      : { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
  const storeAs = (role: (typeof ROLES)[number]) =>
    new S3Store(bucket, 'backups', {
      kmsKeyId: settings.kmsAlias,
      client: new S3Client({ ...clientConfig(role), forcePathStyle: true }),
    });

  beforeAll(async () => {
    moto = await startEnforcingMoto(SETUP_REQUESTS);
    const setup = clientConfig();
    await new S3Client({ ...setup, forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }));
    const kms = new KMSClient(setup);
    const key = await kms.send(new CreateKeyCommand({ Description: 'stage key' }));
    keyArn = key.KeyMetadata?.Arn ?? '';
    await kms.send(
      new CreateAliasCommand({ AliasName: settings.kmsAlias, TargetKeyId: key.KeyMetadata?.KeyId }),
    );
    const iam = new IAMClient(setup);
    for (const role of ROLES) {
      const statements = resource(role).Properties.Policies.flatMap((p: Cfn) => p.PolicyDocument.Statement);
      const resolved = resolvePolicy(statements, {
        'BackupBucket.Arn': `arn:aws:s3:::${bucket}`,
        'BackupKey.Arn': keyArn,
        'AWS::Partition': 'aws',
        'AWS::Region': region,
        'AWS::AccountId': '123456789012',
      }).map((statement: Cfn) =>
        // moto checks actions other than S3's against the resource "*" only: the key's ARN is
        // widened for it, so what is checked for KMS is the actions the role grants.
        JSON.stringify(statement.Action).includes('kms:') ? { ...statement, Resource: '*' } : statement,
      );
      credentials[role] = await createUser(iam, role, resolved);
    }
  }, 60_000);

  afterAll(async () => {
    await moto?.stop();
  });

  const dumpKey = 'backups/global_remit/2026/06/01/global_remit-20260601T020000Z.dump';
  const manifestKey = 'backups/global_remit/2026/06/01/global_remit-20260601T020000Z.manifest.json';

  it('refuses a caller it does not know: the policies below are what lets the roles through', async () => {
    const anonymous = new S3Client({ ...clientConfig(), forcePathStyle: true });
    await expect(
      anonymous.send(new GetObjectCommand({ Bucket: bucket, Key: dumpKey })),
    ).rejects.toMatchObject({
      name: 'InvalidAccessKeyId',
    });
  });

  it('lets the dump task store a multi-part dump and its tagged manifest, encrypted with the stage key', async () => {
    const store = storeAs('DumpTaskRole');
    const dump = Buffer.alloc(10 * 1024 * 1024, 7);
    await store.putStream(dumpKey, Readable.from([dump]), { tags: { tier: 'monthly' } });
    await store.putBytes(manifestKey, '{"id":"global_remit-20260601T020000Z"}', {
      tags: { tier: 'monthly' },
    });
    expect((await store.getBytes(dumpKey)).equals(dump)).toBe(true);
    const kms = new KMSClient(clientConfig('DumpTaskRole'));
    const data = await kms.send(
      new GenerateDataKeyCommand({
        KeyId: keyArn,
        KeySpec: 'AES_256',
        // What the policy asks of a client-side call (moto does not evaluate the condition).
        EncryptionContext: { 'pgbp:stage': 'prod' },
      }),
    );
    await expect(
      kms.send(
        new DecryptCommand({
          CiphertextBlob: data.CiphertextBlob,
          EncryptionContext: { 'pgbp:stage': 'prod' },
        }),
      ),
    ).resolves.toBeDefined();
    // Nothing outside the store's prefix.
    await expect(store.putBytes('elsewhere/x.json', '{}')).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('lets the restore task read the dump and write its verify report, and nothing more', async () => {
    const store = storeAs('RestoreTaskRole');
    expect((await store.getBytes(dumpKey)).length).toBe(10 * 1024 * 1024);
    await store.putBytes(dumpKey.replace(/\.dump$/, '.verify.json'), '{"passed":true}');
    const kms = new KMSClient(clientConfig('RestoreTaskRole'));
    const data = await kms.send(
      new GenerateDataKeyCommand({
        KeyId: keyArn,
        KeySpec: 'AES_256',
        // What the policy asks of a client-side call (moto does not evaluate the condition).
        EncryptionContext: { 'pgbp:stage': 'prod' },
      }),
    );
    await expect(
      kms.send(
        new DecryptCommand({
          CiphertextBlob: data.CiphertextBlob,
          EncryptionContext: { 'pgbp:stage': 'prod' },
        }),
      ),
    ).resolves.toBeDefined();
    // A restore never deletes a backup.
    const deleted = await store.deleteMany([dumpKey]).catch((e: Error) => ({ deleted: [], error: e.name }));
    expect(deleted.deleted).toEqual([]);
    expect((await storeAs('DumpTaskRole').getBytes(dumpKey)).length).toBe(10 * 1024 * 1024);
  });
});
