import { resolve } from 'node:path';
import { type Config, loadConfig, type RetentionPolicy, storeRetention } from '../lib/config.js';
import { ConfigError } from '../lib/domain/errors.js';
import { clusterPrefix } from '../lib/domain/physical-layout.js';
import { WAL_LAG_SECONDS_METRIC } from '../lib/domain/wal-archive-health.js';
import { ALERTED_ERRORS_METRIC } from '../lib/platform/lambda.js';
import { METRIC_NAMESPACE } from '../lib/platform/metrics.js';
import { machineSettings, SERVICE } from '../lib/state-machines.js';
import {
  type SecondaryBucketParameters,
  type SecondaryStore,
  secondaryPolicies,
  secondaryStore,
} from './secondary-store.js';

/**
 * What serverless.yml needs from a stage's config (config/<stage>.yml, validated by
 * lib/config.ts): names, numbers as CloudFormation wants them, and the resources that come in
 * one per database, e-mail address or function. Computed here because YAML cannot parse `6h`,
 * loop or take a maximum; serverless.yml reads it through deploy/stage-settings.cjs.
 */

export { SERVICE };

/** The stages that deploy; `local` runs on one machine and never does. */
export const DEPLOY_STAGES = ['dev', 'staging', 'prod'] as const;

/** The Lambda functions of serverless.yml, by their key there (the Errors alarms cover each). */
export const FUNCTION_KEYS = [
  'checkSize',
  'applyRetention',
  'checkStaleness',
  'notify',
  'slackForwarder',
  'prepareRestore',
  'thawBackup',
  'checkWal',
] as const;

/** The WAL watch's embedded metric (lib/monitor/wal-lag.ts): the archive's lag behind the server. */
export const WAL_LAG_METRIC = { namespace: METRIC_NAMESPACE, name: WAL_LAG_SECONDS_METRIC } as const;

/** The staleness watchdog's embedded metric (lib/platform/metrics.ts, lib/monitor/staleness.ts). */
export const BACKUP_AGE_METRIC = { namespace: METRIC_NAMESPACE, name: 'BackupAgeHours' } as const;

/** CloudWatch Logs accepts only these retention periods. */
const LOG_RETENTION_DAYS = new Set([
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
]);

/** Fargate task sizes: memory (MiB) allowed per CPU unit count. */
const FARGATE_MEMORY: Record<number, (memory: number) => boolean> = {
  256: (m) => [512, 1024, 2048].includes(m),
  512: (m) => m >= 1024 && m <= 4096 && m % 1024 === 0,
  1024: (m) => m >= 2048 && m <= 8192 && m % 1024 === 0,
  2048: (m) => m >= 4096 && m <= 16384 && m % 1024 === 0,
  4096: (m) => m >= 8192 && m <= 30720 && m % 1024 === 0,
  8192: (m) => m >= 16384 && m <= 61440 && m % 4096 === 0,
  16384: (m) => m >= 32768 && m <= 122880 && m % 8192 === 0,
};

/** S3 charges archived objects for at least this many days; expiring earlier only costs more. */
const MINIMUM_ARCHIVE_DAYS = { GLACIER: 90, DEEP_ARCHIVE: 180 } as const;

type Cfn = Record<string, unknown>;

export interface StageSettings {
  readonly stage: string;
  readonly region: string;
  /** The stage config inside a Lambda package and the task image (relative to their root). */
  readonly configFile: string;
  readonly bucketName: string;
  /** The store's keys under the bucket: for `s3:prefix` conditions, and as an object ARN suffix. */
  readonly storePrefixes: readonly string[];
  readonly storeObjects: string;
  readonly kmsAlias: string;
  /** Databases backed up and drilled when an execution names none, comma-separated (an ASL placeholder). */
  readonly configuredDatabases: string;
  /** The tasks' network, which Prepare joins to ask the database server whether a target exists. */
  readonly network: { readonly subnetIds: readonly string[]; readonly securityGroupIds: readonly string[] };
  /** DefinitionSubstitutions values that come from the config; all strings, as CloudFormation wants. */
  readonly asl: {
    readonly backupMaxConcurrency: string;
    readonly drillMaxConcurrency: string;
    readonly dumpHeartbeatSeconds: string;
    readonly dumpTimeoutSeconds: string;
    readonly restoreHeartbeatSeconds: string;
    readonly restoreTimeoutSeconds: string;
    readonly thawPollSeconds: string;
    readonly thawPollRounds: string;
    readonly taskSubnets: string;
    readonly taskSecurityGroups: string;
    readonly taskAssignPublicIp: 'ENABLED' | 'DISABLED';
  };
  readonly schedules: {
    readonly timezone: string;
    readonly backup: string;
    readonly staleness: string;
    readonly drill: string;
    readonly baseBackup: string;
    readonly pitrDrill: string;
    readonly walCheck: string;
  };
  /**
   * The cluster's physical archive (WAL, history files, base backups) under the store: for the
   * database host's push policy, the WAL watch's alarm and the lifecycle rule that keeps it out
   * of the archive classes.
   */
  readonly wal: {
    readonly cluster: string;
    readonly rpoSeconds: number;
    /** `<prefix>/~cluster/<cluster>/`: the archive's keys, for `s3:prefix` conditions and filters. */
    readonly archivePrefix: string;
    readonly archivePrefixes: readonly string[];
    /** The archive's objects as an ARN suffix. */
    readonly archiveObjects: string;
    /** Every cluster's physical archive (`<prefix>/~cluster/`), for the lifecycle rule. */
    readonly physicalPrefix: string;
  };
  readonly task: {
    readonly image: string;
    readonly cpu: string;
    readonly memory: string;
    readonly ephemeralStorageGiB: number;
    /** How often the tasks heartbeat (PGBP_HEARTBEAT_SECONDS). */
    readonly heartbeatIntervalSeconds: string;
    /** Image pulls are allowed from this ECR repository only. */
    readonly ecrRepositoryArn: string;
    /** RuntimePlatform.CpuArchitecture of the task definitions; the image is built for it. */
    readonly cpuArchitecture: 'ARM64' | 'X86_64';
  };
  readonly logRetentionDays: number;
  readonly lifecycle: {
    readonly monthlyArchiveAfterDays: number;
    readonly yearlyArchiveAfterDays: number;
    readonly monthlyExpireAfterDays: number;
    readonly yearlyExpireAfterDays: number;
    readonly noncurrentExpireAfterDays: number;
  };
  readonly staleAfterHours: number;
  /** Object Lock default retention; `enabled` is a string for a CloudFormation condition. */
  readonly objectLock: { readonly enabled: 'true' | 'false'; readonly mode: string; readonly days: number };
  /** The database password: how ECS injects it as PGPASSWORD, and the statement that lets ECS read it. */
  readonly dbPassword: { readonly valueFrom: Cfn | string; readonly readStatement: Cfn };
  /** The statement that lets the Slack forwarder read its webhook URL. */
  readonly slackWebhook: { readonly readStatement: Cfn };
  /**
   * The second bucket (config `stores.secondary`), in its own region, made by
   * deploy/secondary-bucket.yml with these parameters; the stack grants its roles on it.
   */
  readonly secondary?: SecondaryStore & { readonly parameters: SecondaryBucketParameters };
  /** The resources that come one per database, address or function: merged into `resources`. */
  readonly resources: { readonly Resources: Record<string, Cfn> };
  /** Base backups and the point-in-time recovery drill: DefinitionSubstitutions and task sizes. */
  readonly pitr: {
    readonly cluster: string;
    readonly baseBackupHeartbeatSeconds: string;
    readonly baseBackupTimeoutSeconds: string;
    readonly drillHeartbeatSeconds: string;
    readonly drillTimeoutSeconds: string;
  };
}

function fail(file: string, path: string, message: string): never {
  throw new ConfigError(`${file}: ${path}: ${message}`);
}

/** A logical-id-safe form of a name, unique by its position. */
function logicalPart(name: string, index: number): string {
  const alnum = name.replace(/[^A-Za-z0-9]/g, '');
  return `${index + 1}${alnum.charAt(0).toUpperCase()}${alnum.slice(1)}`.slice(0, 40);
}

/** `arn:…:repository/name` of an ECR image URI, or undefined for any other registry. */
export function ecrRepositoryArn(image: string): string | undefined {
  const m = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)(?:[:@].*)?$/.exec(image);
  if (!m) return undefined;
  const [, account, region, repository] = m;
  const partition = region?.startsWith('cn-')
    ? 'aws-cn'
    : region?.startsWith('us-gov-')
      ? 'aws-us-gov'
      : 'aws';
  return `arn:${partition}:ecr:${region}:${account}:repository/${repository}`;
}

/**
 * The IAM statement that lets a role read one secret: Secrets Manager by name or ARN, or SSM
 * (`ssm:/name`). `reader` is who reads an SSM parameter: the code calls GetParameter, ECS
 * injecting a container secret calls GetParameters.
 */
export function secretReadStatement(id: string, reader: 'code' | 'ecs' = 'code'): Cfn {
  if (id.startsWith('ssm:')) {
    const name = id.slice(4).replace(/^\//, '');
    return {
      Effect: 'Allow',
      Action: [reader === 'ecs' ? 'ssm:GetParameters' : 'ssm:GetParameter'],
      Resource: {
        'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${name}`,
      },
    };
  }
  return {
    Effect: 'Allow',
    Action: ['secretsmanager:GetSecretValue'],
    Resource: id.startsWith('arn:')
      ? id
      : // Secrets Manager appends six random characters to a secret's ARN.
        {
          'Fn::Sub': `arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${id}-??????`,
        },
  };
}

/**
 * The ECS `valueFrom` of the password secret: a parameter ARN for SSM (injected whole); for
 * Secrets Manager a (partial) secret ARN, with `:password::` for a JSON secret, so PGPASSWORD
 * gets the field and not the whole JSON document.
 */
export function secretValueFrom(id: string, format: 'json' | 'plain'): Cfn | string {
  if (id.startsWith('ssm:')) {
    return {
      'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${id.slice(4).replace(/^\//, '')}`,
    };
  }
  const field = format === 'json' ? ':password::' : '';
  if (id.startsWith('arn:')) return `${id}${field}`;
  return {
    'Fn::Sub': `arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${id}${field}`,
  };
}

function ageAlarms(config: Config, staleAfterHours: number): Record<string, Cfn> {
  const out: Record<string, Cfn> = {};
  config.databases.forEach((d, i) => {
    out[`BackupAgeAlarm${logicalPart(d.name, i)}`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: `${SERVICE}-${config.stage}-backup-age-${d.name}`,
        AlarmDescription: `The newest good backup of ${d.name} is older than ${staleAfterHours} h, or the hourly staleness check stopped reporting.`,
        Namespace: BACKUP_AGE_METRIC.namespace,
        MetricName: BACKUP_AGE_METRIC.name,
        Dimensions: [
          { Name: 'Stage', Value: config.stage },
          { Name: 'Database', Value: d.name },
        ],
        Statistic: 'Maximum',
        Period: 3600,
        // Two hours in a row: one late hourly run is not an outage, two are.
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
        Threshold: staleAfterHours,
        ComparisonOperator: 'GreaterThanThreshold',
        // No data means the watchdog itself is down: that is an alarm too.
        TreatMissingData: 'breaching',
        AlarmActions: [{ Ref: 'AlertsTopic' }],
        OKActions: [{ Ref: 'AlertsTopic' }],
      },
    };
  });
  return out;
}

/**
 * One alarm per function on its unexpected failures: Lambda's Errors (which also counts
 * timeouts, crashes and failed cold starts) minus the typed verdicts the handler counted as
 * AlertedErrors (lib/platform/lambda.ts), which their state machine has already alerted.
 */
function lambdaErrorAlarms(stage: string): Record<string, Cfn> {
  const out: Record<string, Cfn> = {};
  for (const key of FUNCTION_KEYS) {
    const logical = `${key.charAt(0).toUpperCase()}${key.slice(1)}`;
    const functionName = { Ref: `${logical}LambdaFunction` };
    out[`${logical}ErrorsAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: `${SERVICE}-${stage}-${key}-errors`,
        AlarmDescription: `The ${key} Lambda function failed unexpectedly (its typed verdicts are alerted by the state machine).`,
        Metrics: [
          {
            Id: 'errors',
            MetricStat: {
              Metric: {
                Namespace: 'AWS/Lambda',
                MetricName: 'Errors',
                Dimensions: [{ Name: 'FunctionName', Value: functionName }],
              },
              Period: 300,
              Stat: 'Sum',
            },
            ReturnData: false,
          },
          {
            Id: 'alerted',
            MetricStat: {
              Metric: {
                Namespace: METRIC_NAMESPACE,
                MetricName: ALERTED_ERRORS_METRIC,
                Dimensions: [{ Name: 'Function', Value: functionName }],
              },
              Period: 300,
              Stat: 'Sum',
            },
            ReturnData: false,
          },
          {
            Id: 'unexpected',
            Expression: 'errors - FILL(alerted, 0)',
            Label: 'Unexpected errors',
            ReturnData: true,
          },
        ],
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: 'AlertsTopic' }],
      },
    };
  }
  return out;
}

/** `…/repository@sha256:<digest>`: an image that cannot change under the stack. */
const IMAGE_DIGEST = /@sha256:[0-9a-f]{64}$/;

/**
 * What the tasks reach in AWS, for private subnets without NAT: image pulls (ECR api and dkr,
 * layers from S3), logs, the password, the task token, SSE-KMS. SSM is there for a password
 * kept in Parameter Store.
 */
export const INTERFACE_ENDPOINTS = [
  'ecr.api',
  'ecr.dkr',
  'logs',
  'secretsmanager',
  'ssm',
  'states',
  'kms',
  // The WAL watch runs in the database's network and publishes its alerts itself.
  'sns',
] as const;

function vpcEndpoints(
  endpoints: { readonly vpcId: string; readonly routeTableIds: readonly string[] },
  subnets: readonly string[],
  securityGroups: readonly string[],
): Record<string, Cfn> {
  const out: Record<string, Cfn> = {
    VpcEndpointSecurityGroup: {
      Type: 'AWS::EC2::SecurityGroup',
      Properties: {
        GroupDescription: `${SERVICE}: HTTPS from the Fargate tasks to the VPC endpoints`,
        VpcId: endpoints.vpcId,
        SecurityGroupIngress: securityGroups.map((id) => ({
          IpProtocol: 'tcp',
          FromPort: 443,
          ToPort: 443,
          SourceSecurityGroupId: id,
        })),
      },
    },
    S3GatewayEndpoint: {
      Type: 'AWS::EC2::VPCEndpoint',
      Properties: {
        VpcEndpointType: 'Gateway',
        VpcId: endpoints.vpcId,
        ServiceName: { 'Fn::Sub': `com.amazonaws.\${AWS::Region}.s3` },
        RouteTableIds: [...endpoints.routeTableIds],
      },
    },
  };
  for (const service of INTERFACE_ENDPOINTS) {
    const logical = service
      .split('.')
      .map((p) => `${p.charAt(0).toUpperCase()}${p.slice(1)}`)
      .join('');
    out[`${logical}InterfaceEndpoint`] = {
      Type: 'AWS::EC2::VPCEndpoint',
      Properties: {
        VpcEndpointType: 'Interface',
        VpcId: endpoints.vpcId,
        ServiceName: { 'Fn::Sub': `com.amazonaws.\${AWS::Region}.${service}` },
        SubnetIds: [...subnets],
        SecurityGroupIds: [{ Ref: 'VpcEndpointSecurityGroup' }],
        PrivateDnsEnabled: true,
      },
    };
  }
  return out;
}

/** A configured drill server's password, read by the restore task's code (not injected by ECS). */
function drillServerSecret(config: Config): Record<string, Cfn> {
  const id = config.drill.target === 'server' ? config.drill.server?.passwordSecretId : undefined;
  if (!id) return {};
  return {
    DrillServerSecretPolicy: {
      Type: 'AWS::IAM::Policy',
      Properties: {
        PolicyName: 'drill-server-password',
        Roles: [{ Ref: 'RestoreTaskRole' }],
        PolicyDocument: { Version: '2012-10-17', Statement: [secretReadStatement(id, 'code')] },
      },
    },
  };
}

function emailSubscriptions(config: Config): Record<string, Cfn> {
  const out: Record<string, Cfn> = {};
  config.alerts.emails.forEach((email, i) => {
    out[`AlertsEmailSubscription${logicalPart(email.split('@')[0] ?? '', i)}`] = {
      Type: 'AWS::SNS::Subscription',
      Properties: { TopicArn: { Ref: 'AlertsTopic' }, Protocol: 'email', Endpoint: email },
    };
  });
  return out;
}

type Lifecycle = StageSettings['lifecycle'];

/**
 * A bucket's lifecycle rules for the retention policies of what it holds: the most generous,
 * since one bucket's rules serve every database.
 */
function bucketLifecycle(
  policies: readonly Pick<RetentionPolicy, 'daily' | 'monthly' | 'yearly'>[],
): Lifecycle {
  const daily = Math.max(...policies.map((p) => p.daily));
  const monthly = Math.max(...policies.map((p) => p.monthly));
  const yearly = Math.max(...policies.map((p) => p.yearly));
  // A monthly or yearly backup is also one of the dailies until `daily` newer ones exist.
  const archiveAfter = daily + 1;
  // A backstop behind retention, never ahead of it: one period more than the kept count.
  return {
    monthlyArchiveAfterDays: archiveAfter,
    yearlyArchiveAfterDays: archiveAfter,
    monthlyExpireAfterDays: Math.max(
      archiveAfter + (monthly + 1) * 31,
      archiveAfter + MINIMUM_ARCHIVE_DAYS.GLACIER,
    ),
    yearlyExpireAfterDays: Math.max(
      archiveAfter + (yearly + 1) * 366,
      archiveAfter + MINIMUM_ARCHIVE_DAYS.DEEP_ARCHIVE,
    ),
    noncurrentExpireAfterDays: 30,
  };
}

/** The parameters of deploy/secondary-bucket.yml: the stage bucket's protections, the second store's retention. */
function secondaryBucketParameters(
  stage: string,
  store: SecondaryStore,
  lifecycle: Lifecycle,
  objectLock: StageSettings['objectLock'],
): SecondaryBucketParameters {
  const prefix = store.storeObjects === '*' ? '' : store.storeObjects.replace(/\/\*$/, '');
  return {
    Stage: stage,
    BucketName: store.bucketName,
    KeyAlias: store.kmsAlias,
    PhysicalPrefix: `${clusterPrefix(prefix, '')}/`,
    MonthlyArchiveAfterDays: lifecycle.monthlyArchiveAfterDays,
    MonthlyExpireAfterDays: lifecycle.monthlyExpireAfterDays,
    YearlyArchiveAfterDays: lifecycle.yearlyArchiveAfterDays,
    YearlyExpireAfterDays: lifecycle.yearlyExpireAfterDays,
    NoncurrentExpireAfterDays: lifecycle.noncurrentExpireAfterDays,
    ObjectLockEnabled: objectLock.enabled,
    ObjectLockMode: objectLock.mode,
    ObjectLockDays: objectLock.days,
  };
}

/** The settings of one deployable stage; ConfigError naming the file and the key when the config cannot deploy. */
export function stageSettings(stage: string, options: { readonly root: string }): StageSettings {
  if (!(DEPLOY_STAGES as readonly string[]).includes(stage)) {
    throw new ConfigError(
      `stage ${JSON.stringify(stage)} does not deploy: expected one of ${DEPLOY_STAGES.join(', ')}`,
    );
  }
  const configFile = `config/${stage}.yml`;
  const config = loadConfig(resolve(options.root, configFile));
  if (config.stage !== stage) fail(configFile, 'stage', `is ${config.stage}, expected ${stage}`);
  if (config.mode !== 'aws') fail(configFile, 'mode', 'must be aws for a deployed stage');

  const store = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(config.store);
  if (!store?.[1]) fail(configFile, 'store', 'must be s3://bucket/prefix for a deployed stage');
  const bucketName = store[1];
  const prefix = (store[2] ?? '').replace(/^\/+|\/+$/g, '');

  const kmsAlias = config.kmsKeyId ?? `alias/${SERVICE}-${stage}`;
  if (!kmsAlias.startsWith('alias/')) {
    fail(
      configFile,
      'kmsKeyId',
      'must be an alias (alias/name): the stack creates the key of the stage under it',
    );
  }
  if (config.databases.length === 0) fail(configFile, 'databases', 'lists no database to back up');

  const aws = config.aws;
  if (!aws.taskImage) fail(configFile, 'aws.taskImage', 'is required: the image of tasks/Dockerfile');
  if (!aws.network)
    fail(configFile, 'aws.network', 'is required: the subnets and security groups of the tasks');
  if (!LOG_RETENTION_DAYS.has(aws.logRetentionDays)) {
    fail(
      configFile,
      'aws.logRetentionDays',
      `${aws.logRetentionDays} is not a retention CloudWatch Logs offers`,
    );
  }
  const memoryFits = FARGATE_MEMORY[aws.taskCpu];
  if (!memoryFits) fail(configFile, 'aws.taskCpu', `${aws.taskCpu} is not a Fargate CPU size`);
  if (!memoryFits(aws.taskMemory)) {
    fail(
      configFile,
      'aws.taskMemory',
      `${aws.taskMemory} MiB does not go with ${aws.taskCpu} CPU units on Fargate`,
    );
  }
  // The same derivation the local runner fills the placeholders with.
  const machines = machineSettings(config);
  if (!machines.thawPolling) fail(configFile, 'defaults.restore.thawTier', 'is not a retrieval tier');
  const heartbeatTimeout = machines.heartbeatTimeoutSeconds;
  if (machines.taskTimeoutSeconds <= heartbeatTimeout) {
    fail(configFile, 'dump.timeout', `must be longer than the heartbeat timeout (${heartbeatTimeout} s)`);
  }

  // The bucket's rules serve every database, so they follow the most generous retention.
  const policies = [
    config.defaults.retention,
    ...config.databases.map((d) => ({ ...config.defaults.retention, ...d.retention })),
  ];
  const lifecycle = bucketLifecycle(policies);
  const staleAfterHours = config.defaults.staleAfter / 3_600_000;

  // Object Lock: a locked version outlives any delete until its retention ends. The default
  // retention stays within the shortest daily retention, so the plan's own deletes of dailies
  // find their versions unlocked (deleting the current version only adds a delete marker).
  const shortestDaily = Math.min(...policies.map((p) => p.daily));
  const lockOn = aws.objectLock?.enabled ?? stage === 'prod';
  const lockDays = aws.objectLock?.days ?? Math.max(1, shortestDaily);
  if (lockOn && lockDays > Math.max(1, shortestDaily)) {
    fail(
      configFile,
      'aws.objectLock.days',
      `${lockDays} days outlives the shortest daily retention (${shortestDaily}); retention could not remove what it plans to`,
    );
  }
  const objectLock = lockOn
    ? { enabled: 'true' as const, mode: aws.objectLock?.mode ?? 'GOVERNANCE', days: lockDays }
    : // Unused when disabled; present so the template resolves.
      { enabled: 'false' as const, mode: 'GOVERNANCE', days: 1 };

  const passwordSecret = config.connection.passwordSecretId;
  if (!passwordSecret) {
    fail(
      configFile,
      'connection.passwordSecretId',
      'is required: on AWS the tasks get the password from Secrets Manager',
    );
  }
  const slackSecret = config.alerts.slackWebhookSecretId;
  if (!slackSecret)
    fail(configFile, 'alerts.slackWebhookSecretId', 'is required: the alerts topic forwards to Slack');
  const ecrArn = ecrRepositoryArn(aws.taskImage);
  if (!ecrArn || !IMAGE_DIGEST.test(aws.taskImage))
    fail(
      configFile,
      'aws.taskImage',
      'must be an ECR image pinned by digest (<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<64 hex>): a tag can move under a running stack',
    );
  if (passwordSecret.startsWith('ssm:') && config.connection.passwordSecretFormat === 'json') {
    fail(
      configFile,
      'connection.passwordSecretFormat',
      'must be plain for an SSM parameter: ECS injects a parameter whole, it cannot pick a JSON field',
    );
  }

  const secondary = secondaryStore(config, configFile, { bucketName, region: config.region });
  const secondaryPolicyList = secondary
    ? [
        storeRetention(config, 'secondary', ''),
        ...config.databases.map((d) => storeRetention(config, 'secondary', d.name)),
      ]
    : [];
  if (secondary && lockOn && lockDays > Math.max(1, Math.min(...secondaryPolicyList.map((p) => p.daily)))) {
    fail(
      configFile,
      'aws.objectLock.days',
      `${lockDays} days outlives the shortest daily retention of stores.secondary; retention could not remove what it plans to there`,
    );
  }

  return {
    stage,
    region: config.region,
    configFile,
    bucketName,
    storePrefixes: prefix ? [`${prefix}/`, `${prefix}/*`] : ['*'],
    storeObjects: prefix ? `${prefix}/*` : '*',
    kmsAlias,
    configuredDatabases: machines.substitutions.ConfiguredDatabases,
    network: { subnetIds: [...aws.network.subnets], securityGroupIds: [...aws.network.securityGroups] },
    asl: {
      backupMaxConcurrency: machines.substitutions.BackupMaxConcurrency,
      drillMaxConcurrency: machines.substitutions.DrillMaxConcurrency,
      dumpHeartbeatSeconds: machines.substitutions.DumpHeartbeatSeconds,
      dumpTimeoutSeconds: machines.substitutions.DumpTimeoutSeconds,
      restoreHeartbeatSeconds: machines.substitutions.RestoreHeartbeatSeconds,
      restoreTimeoutSeconds: machines.substitutions.RestoreTimeoutSeconds,
      thawPollSeconds: machines.substitutions.ThawPollSeconds,
      thawPollRounds: machines.substitutions.ThawPollRounds,
      taskSubnets: aws.network.subnets.join(','),
      taskSecurityGroups: aws.network.securityGroups.join(','),
      taskAssignPublicIp: aws.network.assignPublicIp ? 'ENABLED' : 'DISABLED',
    },
    schedules: { ...config.schedules },
    wal: {
      cluster: config.wal.cluster,
      rpoSeconds: Math.round(config.wal.rpo / 1000),
      archivePrefix: `${clusterPrefix(prefix, config.wal.cluster)}/`,
      archivePrefixes: [
        `${clusterPrefix(prefix, config.wal.cluster)}/`,
        `${clusterPrefix(prefix, config.wal.cluster)}/*`,
      ],
      archiveObjects: `${clusterPrefix(prefix, config.wal.cluster)}/*`,
      physicalPrefix: `${clusterPrefix(prefix, '')}/`,
    },
    task: {
      image: aws.taskImage,
      cpu: String(aws.taskCpu),
      memory: String(aws.taskMemory),
      ephemeralStorageGiB: aws.taskEphemeralStorageGiB,
      heartbeatIntervalSeconds: String(machines.heartbeatIntervalSeconds),
      ecrRepositoryArn: ecrArn,
      cpuArchitecture: aws.taskArchitecture,
    },
    logRetentionDays: aws.logRetentionDays,
    lifecycle,
    staleAfterHours,
    objectLock,
    ...(secondary
      ? {
          secondary: {
            ...secondary,
            parameters: secondaryBucketParameters(
              stage,
              secondary,
              bucketLifecycle(secondaryPolicyList),
              objectLock,
            ),
          },
        }
      : {}),
    dbPassword: {
      valueFrom: secretValueFrom(passwordSecret, config.connection.passwordSecretFormat),
      readStatement: secretReadStatement(passwordSecret, 'ecs'),
    },
    slackWebhook: { readStatement: secretReadStatement(slackSecret) },
    pitr: {
      cluster: machines.substitutions.PitrCluster,
      baseBackupHeartbeatSeconds: machines.substitutions.BaseBackupHeartbeatSeconds,
      baseBackupTimeoutSeconds: machines.substitutions.BaseBackupTimeoutSeconds,
      drillHeartbeatSeconds: machines.substitutions.PitrDrillHeartbeatSeconds,
      drillTimeoutSeconds: machines.substitutions.PitrDrillTimeoutSeconds,
    },
    resources: {
      Resources: {
        ...emailSubscriptions(config),
        ...ageAlarms(config, staleAfterHours),
        ...lambdaErrorAlarms(stage),
        ...drillServerSecret(config),
        ...(secondary ? secondaryPolicies(secondary, stage) : {}),
        ...(aws.network.endpoints
          ? vpcEndpoints(aws.network.endpoints, aws.network.subnets, aws.network.securityGroups)
          : {}),
      },
    },
  };
}
