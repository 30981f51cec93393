import { KMS } from '@aws-sdk/client-kms';
import { once } from './once.js';

/**
 * The KMS client: the aggregated `KMS` class rather than `KMSClient`, because the Encryption
 * SDK's keyring calls its methods (`generateDataKey`, `decrypt`) by name.
 */
export const kmsClient = /* @__PURE__ */ once(() => new KMS({ maxAttempts: 4 }));

const kmsByRegion = new Map<string, KMS>();
/** The KMS client of one region: a second store's key lives in its bucket's region, and so does its alias. */
export function kmsClientIn(region: string): KMS {
  let client = kmsByRegion.get(region);
  if (!client) {
    client = new KMS({ region, maxAttempts: 4 });
    kmsByRegion.set(region, client);
  }
  return client;
}
