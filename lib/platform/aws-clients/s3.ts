import { S3Client } from '@aws-sdk/client-s3';
import { once } from './once.js';

const customS3Endpoint = () => Boolean(process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL);

/** The S3 client; a custom endpoint (a local S3-compatible server) gets path-style addressing. */
export const s3Client = /* @__PURE__ */ once(
  () => new S3Client({ forcePathStyle: customS3Endpoint(), maxAttempts: 4 }),
);
