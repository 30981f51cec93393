import { type ChildProcess, spawn } from 'node:child_process';
import pg from 'pg';
import { freePort } from './ports.js';

/**
 * Starts the moto server (our AWS for tests) on a free loopback port and points the SDK at it
 * through the standard variables; checks that PostgreSQL answers. Test workers inherit the env.
 */
async function waitForMoto(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto server exited (${child.exitCode}): ${log()}`);
    try {
      const res = await fetch(`${url}/moto-api/`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`moto server did not answer at ${url} within 30 s: ${log()}`);
}

let moto: ChildProcess | undefined;

export async function setup(): Promise<void> {
  process.env.PGHOST ??= '127.0.0.1';
  process.env.PGPORT ??= '5432';
  process.env.PGUSER ??= 'postgres';
  const client = new pg.Client({ database: 'postgres' });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new Error(
      `PostgreSQL does not answer at ${process.env.PGHOST}:${process.env.PGPORT} as ${process.env.PGUSER}: ${(error as Error).message}`,
    );
  } finally {
    await client.end().catch(() => {});
  }

  const port = await freePort();
  let output = '';
  moto = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  moto.stdout?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  });
  moto.stderr?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForMoto(url, moto, () => output);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: url,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  });
}

export async function teardown(): Promise<void> {
  moto?.kill('SIGTERM');
}
