import { GetObjectLockConfigurationCommand } from '@aws-sdk/client-s3';
import { errorName } from './s3-errors.js';
import type { BackupStore } from './store.js';

/**
 * Whether any object in the store can be under Object Lock: only in an S3 bucket with Object
 * Lock enabled (retention dates and legal holds both need it). Retention asks once per run so
 * it can skip a HEAD per object on buckets that cannot hold a locked object. A store without
 * the capability cannot; when the answer is unknown (no permission), it says yes: then every
 * object is checked.
 */
export async function objectLockPossible(store: BackupStore): Promise<boolean> {
  const lock = store.capabilities.objectLock;
  if (!lock) return false;
  try {
    const out = await lock.client.send(new GetObjectLockConfigurationCommand({ Bucket: lock.bucket }));
    return out.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
  } catch (error) {
    return errorName(error) !== 'ObjectLockConfigurationNotFoundError';
  }
}
