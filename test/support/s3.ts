import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectLockConfigurationCommand,
} from '@aws-sdk/client-s3';
import { s3Client } from '../../lib/platform/aws-clients/s3.js';

/** A fresh bucket on the moto server for one test. */
export async function createBucket(options: { objectLock?: boolean } = {}): Promise<string> {
  const bucket = `pgbp-t-${randomBytes(5).toString('hex')}`;
  await s3Client().send(
    new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: options.objectLock ?? false }),
  );
  if (options.objectLock) {
    await s3Client().send(
      new PutObjectLockConfigurationCommand({
        Bucket: bucket,
        ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' },
      }),
    );
  }
  return bucket;
}

export async function listKeys(bucket: string, prefix = ''): Promise<string[]> {
  const out = await s3Client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key ?? '');
}

export async function inProgressUploads(bucket: string): Promise<number> {
  const out = await s3Client().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return out.Uploads?.length ?? 0;
}
