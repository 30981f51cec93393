/**
 * What a process may call, read from what it is built from: the AWS SDK commands a bundle
 * imports (the SDK stays external, so every command is a named import), and the Resource of
 * each Task state of an ASL file. Each is mapped to the IAM actions it needs, to be checked
 * against the roles of the packaged stack.
 */

// biome-ignore lint/suspicious/noExplicitAny: the generated CloudFormation, read as untyped JSON
type Cfn = Record<string, any>;

/**
 * The IAM actions each SDK command needs. The KMS actions are SSE-KMS's on the stage key (the
 * bucket's default encryption, and the alerts topic's): S3 and SNS call KMS as the caller.
 * A command missing here fails the coverage test until it is mapped.
 */
export const COMMAND_ACTIONS: Readonly<Record<string, readonly string[]>> = {
  // @aws-sdk/client-s3
  GetObjectCommand: ['s3:GetObject', 'kms:Decrypt'],
  HeadObjectCommand: ['s3:GetObject'],
  PutObjectCommand: ['s3:PutObject', 'kms:GenerateDataKey'],
  CreateMultipartUploadCommand: ['s3:PutObject', 'kms:GenerateDataKey', 'kms:Decrypt'],
  UploadPartCommand: ['s3:PutObject', 'kms:GenerateDataKey'],
  CompleteMultipartUploadCommand: ['s3:PutObject'],
  AbortMultipartUploadCommand: ['s3:AbortMultipartUpload'],
  ListObjectsV2Command: ['s3:ListBucket'],
  ListMultipartUploadsCommand: ['s3:ListBucketMultipartUploads'],
  DeleteObjectCommand: ['s3:DeleteObject'],
  DeleteObjectsCommand: ['s3:DeleteObject'],
  GetObjectTaggingCommand: ['s3:GetObjectTagging'],
  PutObjectTaggingCommand: ['s3:PutObjectTagging'],
  RestoreObjectCommand: ['s3:RestoreObject'],
  GetObjectLockConfigurationCommand: ['s3:GetBucketObjectLockConfiguration'],
  GetObjectRetentionCommand: ['s3:GetObjectRetention'],
  GetObjectLegalHoldCommand: ['s3:GetObjectLegalHold'],
  // @aws-sdk/client-sns: the alerts topic is encrypted with the stage key.
  PublishCommand: ['sns:Publish', 'kms:GenerateDataKey', 'kms:Decrypt'],
  // @aws-sdk/client-sfn
  SendTaskSuccessCommand: ['states:SendTaskSuccess'],
  SendTaskFailureCommand: ['states:SendTaskFailure'],
  SendTaskHeartbeatCommand: ['states:SendTaskHeartbeat'],
  StartExecutionCommand: ['states:StartExecution'],
  DescribeExecutionCommand: ['states:DescribeExecution'],
  GetExecutionHistoryCommand: ['states:GetExecutionHistory'],
  // @aws-sdk/client-secrets-manager, @aws-sdk/client-ssm
  GetSecretValueCommand: ['secretsmanager:GetSecretValue'],
  GetParameterCommand: ['ssm:GetParameter'],
};

/** The SDK commands a bundle imports, from its `import { … } from "@aws-sdk/…"` statements. */
export function sdkCommands(code: string): string[] {
  const found = new Set<string>();
  for (const m of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*["'](@aws-sdk\/[^"']+)["']/g)) {
    for (const part of (m[1] ?? '').split(',')) {
      const name = part
        .trim()
        .split(/\s+as\s+/)[0]
        ?.trim();
      // Clients, enums and helpers are exported too; commands are what calls AWS.
      if (name?.endsWith('Command')) found.add(name);
    }
  }
  return [...found].sort();
}

/** The ASL Resources of the Task states, mapped to the actions they need (Lambda invokes by function). */
export function aslActions(resource: string, parameters: Cfn | undefined): string[] {
  if (
    resource === 'arn:aws:states:::ecs:runTask.waitForTaskToken' ||
    resource === 'arn:aws:states:::ecs:runTask'
  ) {
    const actions = ['ecs:RunTask', 'iam:PassRole'];
    // Tags on create: RunTask tags the task with the task definition's tags.
    if (parameters?.PropagateTags) actions.push('ecs:TagResource');
    return actions;
  }
  const sdk = /^arn:aws:states:::aws-sdk:([a-z0-9]+):([a-zA-Z]+)$/.exec(resource);
  if (sdk) {
    const [, service, action] = sdk;
    return [`${service}:${(action ?? '').charAt(0).toUpperCase()}${(action ?? '').slice(1)}`];
  }
  if (/^\$\{[A-Z][A-Za-z0-9]*FunctionArn\}$/.test(resource)) return ['lambda:InvokeFunction'];
  throw new Error(`no IAM mapping for the Task resource ${resource}`);
}

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** The Allow statements of a role's inline policies. */
export function allowStatements(role: Cfn): Cfn[] {
  return (role.Properties.Policies ?? []).flatMap((p: Cfn) =>
    asArray<Cfn>(p.PolicyDocument.Statement).filter((s) => s.Effect === 'Allow'),
  );
}

function actionMatches(pattern: string, action: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
  return re.test(action);
}

/** The Allow statements of a role that grant an action. */
export function grantsOf(role: Cfn, action: string): Cfn[] {
  return allowStatements(role).filter((s) => asArray<string>(s.Action).some((a) => actionMatches(a, action)));
}
