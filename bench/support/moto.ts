import { spawn } from 'node:child_process';
import { freePort } from '../../test/support/ports.js';

/**
 * How the benchmarks run the emulator. Moto is one Python process on the same two cores as
 * PostgreSQL, pg_dump and zstd, so its own overheads are time the dump loses, and real S3 takes
 * none of it from the database host. These settings remove two such overheads; moto still reads,
 * hashes (MD5 per part), stores and checks every byte it is sent, and pgbp's requests are the
 * same as against AWS.
 * - MOTO_S3_DEFAULT_KEY_BUFFER_SIZE: by default moto spills any part or object above ~5 MiB to a
 *   temporary file on this machine's disk (every 8 MiB part, then the whole object again at
 *   CompleteMultipartUpload): writes that compete with the file store's own writes and fsync in
 *   a two-store dump. 1 GiB keeps them in memory (an object above it still spills).
 * - MALLOC_*: moto reads each request body into fresh buffers and copies a completed upload
 *   several times over; glibc returns each large buffer to the kernel when it is freed, so the
 *   next is page-faulted and zeroed again (kernel time was most of moto's CPU). One arena, large
 *   buffers from the heap and no trimming make it reuse the memory it freed. Moto's memory then
 *   stays near its peak until it stops (bench:dump deletes each dump once it is timed).
 */
const MOTO_ENV = {
  MOTO_S3_DEFAULT_KEY_BUFFER_SIZE: String(1024 * 1024 * 1024),
  MALLOC_ARENA_MAX: '1',
  MALLOC_MMAP_THRESHOLD_: String(1024 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(4 * 1024 * 1024 * 1024),
};

/** The moto server on a free loopback port, for benchmarks that talk to S3. */
export async function startMoto(): Promise<{ env: Record<string, string>; stop: () => void }> {
  const port = await freePort();
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
    env: { ...process.env, ...MOTO_ENV },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/moto-api/`)).ok) break;
    } catch {
      if (Date.now() > deadline) throw new Error(`moto did not start at ${url}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    env: {
      AWS_ENDPOINT_URL: url,
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      AWS_REGION: 'us-east-1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    stop: () => child.kill('SIGTERM'),
  };
}
