/**
 * An S3 endpoint that accepts connections and never answers (a stuck proxy, a dropped route):
 * reads fail with a timeout after the SDK's retries, instead of holding restore_command, and the
 * recovery that waits for it, for ever.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newS3Client } from '../../../lib/platform/aws-clients/s3.js';
import { S3Store } from '../../../lib/storage/s3-store.js';

let server: Server;
let url: string;
const sockets: Socket[] = [];

beforeAll(async () => {
  // Reads every request and says nothing back.
  server = createServer((socket) => {
    sockets.push(socket);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  url = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
});

/**
 * A store on the endpoint that never answers (its client's timeouts short), and how many
 * connections were made to it while `fn` ran.
 */
async function onSilentStore(fn: (store: S3Store) => Promise<void>): Promise<number> {
  const before = process.env.AWS_ENDPOINT_URL_S3;
  process.env.AWS_ENDPOINT_URL_S3 = url;
  const client = newS3Client({ region: 'us-east-1', timeouts: { connectMs: 1_000, idleMs: 300 } });
  try {
    const connectionsBefore = sockets.length;
    await fn(new S3Store('silent-bucket', 'wal', { client }));
    return sockets.length - connectionsBefore;
  } finally {
    client.destroy();
    if (before === undefined) delete process.env.AWS_ENDPOINT_URL_S3;
    else process.env.AWS_ENDPOINT_URL_S3 = before;
  }
}

describe('S3 requests to a store that never answers', () => {
  it('fail with a timeout once every attempt has waited its idle limit', async () => {
    const connections = await onSilentStore(async (store) => {
      await expect(store.getBytes('wal/000000010000000000000001.zst')).rejects.toThrow(/timed out/);
    });
    // Each of the SDK's attempts waited on a connection of its own, and gave up.
    expect(connections).toBe(4);
  });

  it('fail as the prefetcher’s plain GET once it has waited the idle limit, with no retry of its own', async () => {
    const connections = await onSilentStore(async (store) => {
      await expect(
        store.capabilities.directGet?.open('wal/000000010000000000000001.zst'),
      ).rejects.toMatchObject({
        name: 'TimeoutError',
        message: expect.stringMatching(/timed out after 300 ms/),
      });
    });
    // The prefetcher reads it again through the SDK, which retries.
    expect(connections).toBe(1);
  });
});
