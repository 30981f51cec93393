import { KMS } from '@aws-sdk/client-kms';
import { once } from './once.js';

/**
 * The KMS client: the aggregated `KMS` class rather than `KMSClient`, because the Encryption
 * SDK's keyring calls its methods (`generateDataKey`, `decrypt`) by name.
 */
export const kmsClient = /* @__PURE__ */ once(() => new KMS({ maxAttempts: 4 }));
