import { S3Client } from '@aws-sdk/client-s3';
import { once } from './once.js';

const customS3Endpoint = () => Boolean(process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL);

/** How long a request may wait: for a connection, and on a socket that carries no byte either way. */
export interface S3Timeouts {
  readonly connectMs: number;
  readonly idleMs: number;
}

/**
 * Without these the SDK waits for ever: a store that accepts a connection and then says nothing
 * (a stuck proxy, a dropped route) would hold restore_command, and the recovery PostgreSQL runs
 * it for, with no error to read. A request that times out is retried like any other failed one
 * (4 attempts), then fails with a TimeoutError: wal-fetch then exits above 125, wal-push non-zero,
 * a backup fails and alerts. Idle, not total: a long upload or download runs as long as its bytes
 * flow, and S3 sends spaces while it works on a long copy or the completion of a large upload.
 */
export const S3_TIMEOUTS: S3Timeouts = { connectMs: 10_000, idleMs: 120_000 };

/** An S3 client (of `region`, or the process's own); a custom endpoint (a local S3-compatible server) gets path-style addressing. */
export function newS3Client(
  options: { readonly region?: string; readonly timeouts?: S3Timeouts } = {},
): S3Client {
  const timeouts = options.timeouts ?? S3_TIMEOUTS;
  const client = new S3Client({
    ...(options.region ? { region: options.region } : {}),
    forcePathStyle: customS3Endpoint(),
    maxAttempts: 4,
    requestHandler: { connectionTimeout: timeouts.connectMs, socketTimeout: timeouts.idleMs },
  });
  timeoutsOf.set(client, timeouts);
  return client;
}

const timeoutsOf = new WeakMap<S3Client, S3Timeouts>();
/** The timeouts a client of {@link newS3Client} was made with, for requests made beside it (lib/storage/s3-direct-get.ts). */
export function s3TimeoutsOf(client: S3Client): S3Timeouts | undefined {
  return timeoutsOf.get(client);
}

/** The S3 client. */
export const s3Client = /* @__PURE__ */ once(() => newS3Client());

const s3ByRegion = new Map<string, S3Client>();
/**
 * The S3 client of one region: a bucket in another region than the process's (a second store)
 * is reached at its own regional endpoint, with no redirect round trip per request.
 */
export function s3ClientIn(region: string): S3Client {
  let client = s3ByRegion.get(region);
  if (!client) {
    client = newS3Client({ region });
    s3ByRegion.set(region, client);
  }
  return client;
}
