import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { secretsClient, ssmClient } from './aws-clients/secrets.js';

const cache = new Map<string, Promise<string>>();

/**
 * A secret's value from Secrets Manager (an id or ARN) or SSM Parameter Store (`ssm:/name`),
 * fetched once per process. A JSON secret yields its `field` (default `password`).
 */
export function getSecret(id: string, field = 'password'): Promise<string> {
  const cacheKey = `${id}#${field}`;
  let value = cache.get(cacheKey);
  if (!value) {
    value = fetchSecret(id, field);
    value.catch(() => cache.delete(cacheKey));
    cache.set(cacheKey, value);
  }
  return value;
}

async function fetchSecret(id: string, field: string): Promise<string> {
  let raw: string | undefined;
  if (id.startsWith('ssm:')) {
    const out = await ssmClient().send(new GetParameterCommand({ Name: id.slice(4), WithDecryption: true }));
    raw = out.Parameter?.Value;
  } else {
    const out = await secretsClient().send(new GetSecretValueCommand({ SecretId: id }));
    raw = out.SecretString;
  }
  if (raw === undefined) throw new Error(`secret ${id} has no string value`);
  if (raw.trimStart().startsWith('{')) {
    const parsed = JSON.parse(raw) as Record<string, unknown>;
    const value = parsed[field];
    if (typeof value !== 'string') throw new Error(`secret ${id} is JSON without a string field "${field}"`);
    return value;
  }
  return raw;
}
