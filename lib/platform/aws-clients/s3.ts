import { S3Client } from '@aws-sdk/client-s3';
import { once } from './once.js';

const customS3Endpoint = () => Boolean(process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL);

/** The S3 client; a custom endpoint (a local S3-compatible server) gets path-style addressing. */
export const s3Client = /* @__PURE__ */ once(
  () => new S3Client({ forcePathStyle: customS3Endpoint(), maxAttempts: 4 }),
);

const s3ByRegion = new Map<string, S3Client>();
/**
 * The S3 client of one region: a bucket in another region than the process's (a second store)
 * is reached at its own regional endpoint, with no redirect round trip per request.
 */
export function s3ClientIn(region: string): S3Client {
  let client = s3ByRegion.get(region);
  if (!client) {
    client = new S3Client({ region, forcePathStyle: customS3Endpoint(), maxAttempts: 4 });
    s3ByRegion.set(region, client);
  }
  return client;
}
