import { spawn } from 'node:child_process';
import { freePort } from '../../test/support/ports.js';

/** The moto server on a free loopback port, for benchmarks that talk to S3. */
export async function startMoto(): Promise<{ env: Record<string, string>; stop: () => void }> {
  const port = await freePort();
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
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
