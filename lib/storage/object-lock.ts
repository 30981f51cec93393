import { GetObjectLockConfigurationCommand, type S3Client } from '@aws-sdk/client-s3';
import { s3Client } from '../platform/aws-clients/s3.js';
import { S3Store } from './s3-store.js';
import type { BackupStore } from './store.js';

/**
 * Whether any object in the store can be under Object Lock: only in an S3 bucket with Object
 * Lock enabled (retention dates and legal holds both need it). Retention asks once per run so
 * it can skip a HEAD per object on buckets that cannot hold a locked object. When the answer
 * is unknown (no permission, another kind of store), it says yes: then every object is checked.
 */
export async function objectLockPossible(
  store: BackupStore,
  client: S3Client = s3Client(),
): Promise<boolean> {
  if (store.kind === 'file') return false;
  if (!(store instanceof S3Store)) return true;
  try {
    const out = await client.send(new GetObjectLockConfigurationCommand({ Bucket: store.bucket }));
    return out.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
  } catch (error) {
    return (error as { name?: string }).name !== 'ObjectLockConfigurationNotFoundError';
  }
}
