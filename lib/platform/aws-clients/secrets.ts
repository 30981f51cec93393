import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { once } from './once.js';

/** Where secrets are read: Secrets Manager, and SSM Parameter Store's secure strings. */
export const secretsClient = /* @__PURE__ */ once(() => new SecretsManagerClient({}));
export const ssmClient = /* @__PURE__ */ once(() => new SSMClient({}));
