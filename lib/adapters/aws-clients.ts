import { ECSClient } from '@aws-sdk/client-ecs';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';

/**
 * SDK clients, each built once per process on first use. Endpoints come from the standard
 * AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) variables, which the SDK reads itself;
 * a custom endpoint (a local S3-compatible server) gets path-style addressing.
 */
function once<T>(build: () => T): () => T {
  let value: T | undefined;
  return () => {
    value ??= build();
    return value;
  };
}

const customS3Endpoint = () => Boolean(process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL);

export const s3Client = /* @__PURE__ */ once(
  () => new S3Client({ forcePathStyle: customS3Endpoint(), maxAttempts: 4 }),
);
export const snsClient = /* @__PURE__ */ once(() => new SNSClient({}));
export const sfnClient = /* @__PURE__ */ once(() => new SFNClient({}));
const sfnByRegion = new Map<string, SFNClient>();
/** A Step Functions client for a stage's region (the CLI starts and follows executions there), one per region. */
export function sfnClientIn(region: string): SFNClient {
  let client = sfnByRegion.get(region);
  if (!client) {
    client = new SFNClient({ region });
    sfnByRegion.set(region, client);
  }
  return client;
}
export const ecsClient = /* @__PURE__ */ once(() => new ECSClient({}));
export const secretsClient = /* @__PURE__ */ once(() => new SecretsManagerClient({}));
export const ssmClient = /* @__PURE__ */ once(() => new SSMClient({}));
