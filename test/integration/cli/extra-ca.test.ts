/**
 * NODE_EXTRA_CA_CERTS for the wal commands the launcher (cli/pgbp) starts: their Node starts with
 * it renamed and applies the certificates at the first TLS connection (cli/extra-ca.cjs). What a
 * user relies on stays: an endpoint signed by a CA given only there is trusted (an S3 store on a
 * private CA, a Slack webhook through fetch), one signed by another is refused, a caller's own
 * `ca` replaces them as Node's rule has it, and every child sees the variable as the user set it.
 * The CAs, certificates and HTTPS servers are the test's own (openssl, node:https), on loopback.
 */

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outputOf } from '../../../lib/platform/processes.js';
import { archiveTag, prefetchDir } from '../../../lib/wal/spool.js';
import { PGBP, PGBP_LAUNCHER, runCli } from '../../support/cli.js';
import { waitFor } from '../../support/wal.js';
import { segmentBytes } from '../../support/wal-bytes.js';

const EXTRA_CA = resolve(import.meta.dirname, '../../../cli/extra-ca.cjs');
const SEGMENT = '000000010000000000000001';

let work: string;
/** The CA given in NODE_EXTRA_CA_CERTS, and another that nothing trusts. */
let privateCa: string;
let otherCa: string;
const servers: Server[] = [];
/** HTTPS endpoints whose certificates the private CA and the other CA signed. */
let trusted: { url: string; requests: string[] };
let untrusted: { url: string; requests: string[] };

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: work, stdio: 'ignore' });
}

/** A CA, and a certificate for 127.0.0.1 that it signed: the paths of the CA's and the server's PEM files. */
function authority(name: string): { ca: string; key: string; cert: string } {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}-ca.key`,
    '-out',
    `${name}-ca.pem`,
    '-days',
    '2',
    '-subj',
    `/CN=pgbp test ${name} CA`,
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    '/CN=127.0.0.1',
  );
  writeFileSync(join(work, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${name}-ca.pem`,
    '-CAkey',
    `${name}-ca.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  );
  return {
    ca: join(work, `${name}-ca.pem`),
    key: join(work, `${name}.key`),
    cert: join(work, `${name}.pem`),
  };
}

/**
 * An S3 endpoint over HTTPS holding an empty WAL archive: its archive.json is there, every
 * listing empty, every other object missing. It records the requests it was sent.
 */
async function emptyArchive(name: string): Promise<{ ca: string; url: string; requests: string[] }> {
  const { ca, key, cert } = authority(name);
  const requests: string[] = [];
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (request, response) => {
    request.resume();
    requests.push(`${request.method} ${request.url}`);
    if (request.method === 'GET' && /[?&]list-type=2/.test(request.url ?? '')) {
      response.writeHead(200, { 'content-type': 'application/xml' });
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>pgbp</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
      );
    } else if (request.method === 'HEAD' && request.url?.split('?')[0]?.endsWith('/archive.json')) {
      response.writeHead(200, { 'content-length': '2', etag: '"pgbp"', 'content-type': 'application/json' });
      response.end();
    } else if (request.method === 'HEAD') {
      response.writeHead(404);
      response.end();
    } else {
      response.writeHead(404, { 'content-type': 'application/xml' });
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>',
      );
    }
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { ca, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** The environment of PostgreSQL's call: AWS settings of the test's endpoint alone, and NODE_EXTRA_CA_CERTS. */
function environment(endpoint: string, node?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('AWS_') && !k.startsWith('PGBP_')) env[k] = v;
  return {
    ...env,
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'pgbp-test',
    AWS_SECRET_ACCESS_KEY: 'pgbp-test',
    AWS_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(work, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(work, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    NODE_EXTRA_CA_CERTS: privateCa,
    ...(node ? { PGBP_NODE: node } : {}),
  };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pgbp-extra-ca-'));
  const a = await emptyArchive('private');
  const b = await emptyArchive('other');
  privateCa = a.ca;
  otherCa = b.ca;
  trusted = a;
  untrusted = b;
}, 60_000);

afterAll(async () => {
  for (const server of servers) await new Promise((done) => server.close(done));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('NODE_EXTRA_CA_CERTS for the wal commands', () => {
  it('a wal-fetch the launcher leaves to Node reaches an S3 store signed by that CA, and no other', async () => {
    // A node that records the environment it was started with.
    const seen = join(work, 'environment');
    const node = join(work, 'node');
    writeFileSync(node, `#!/bin/sh\nenv > ${seen}\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
    const data = mkdtempSync(join(work, 'data-'));
    mkdirSync(join(data, 'pg_wal'));
    const fetch = (endpoint: string) =>
      outputOf(
        spawn(PGBP_LAUNCHER, ['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG', '--store', 's3://pgbp/wal'], {
          cwd: data,
          env: environment(endpoint, node),
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );

    // Trusted: the archive answers that it does not hold the segment.
    expect(await fetch(trusted.url)).toMatchObject({ code: 1, stderr: '' });
    expect(trusted.requests.length).toBeGreaterThan(0);
    // Node started without the variable: the certificates came from pgbp itself.
    const started = readFileSync(seen, 'utf8').split('\n');
    expect(started).toContain(`PGBP_EXTRA_CA_CERTS=${privateCa}`);
    expect(started.some((line) => line.startsWith('NODE_EXTRA_CA_CERTS='))).toBe(false);

    // Another CA's endpoint: refused, and recovery stops rather than ends.
    const refused = await fetch(untrusted.url);
    expect(refused.code).toBe(126);
    expect(refused.stderr).toMatch(/certificate|UNABLE_TO_VERIFY/i);
    expect(untrusted.requests).toEqual([]);
    expect(existsSync(join(data, 'pg_wal/RECOVERYXLOG'))).toBe(false);
  }, 60_000);

  it("keeps Node's rules: fetch and https trust that CA, an explicit ca replaces it, children see the variable", async () => {
    // What a Slack webhook's fetch and an SDK's agent do, in a process started as the launcher starts one.
    const script = `
      require(${JSON.stringify(EXTRA_CA)}).deferExtraCaCerts();
      const https = require('node:https');
      const get = (url, options = {}) => new Promise((done) =>
        https.get(url, options, (r) => { r.resume(); r.on('end', () => done(r.statusCode)); })
          .on('error', (e) => done(e.code)));
      (async () => {
        const result = {
          env: process.env.NODE_EXTRA_CA_CERTS, renamed: process.env.PGBP_EXTRA_CA_CERTS ?? null,
          child: require('node:child_process').execFileSync('sh', ['-c', 'echo "$NODE_EXTRA_CA_CERTS|\${PGBP_EXTRA_CA_CERTS-unset}"']).toString().trim(),
          fetchTrusted: await fetch(${JSON.stringify(`${trusted.url}/wal?list-type=2`)}).then((r) => r.status, (e) => e.cause?.code),
          fetchUntrusted: await fetch(${JSON.stringify(`${untrusted.url}/`)}).then((r) => r.status, (e) => e.cause?.code),
          httpsTrusted: await get(${JSON.stringify(`${trusted.url}/wal?list-type=2`)}),
          httpsAgain: await get(${JSON.stringify(`${trusted.url}/wal?list-type=2`)}),
          httpsUntrusted: await get(${JSON.stringify(`${untrusted.url}/`)}),
          ownCaOther: await get(${JSON.stringify(`${trusted.url}/`)}, { ca: require('node:fs').readFileSync(${JSON.stringify(otherCa)}), agent: false }),
          ownCaOtherServer: await get(${JSON.stringify(`${untrusted.url}/`)}, { ca: require('node:fs').readFileSync(${JSON.stringify(otherCa)}), agent: false }),
        };
        process.stdout.write(JSON.stringify(result));
      })();`;
    const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
    const run = await outputOf(
      spawn(process.execPath, ['-e', script], {
        env: { ...env, PGBP_EXTRA_CA_CERTS: privateCa },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      env: privateCa,
      renamed: null,
      child: `${privateCa}|unset`,
      fetchTrusted: 200,
      fetchUntrusted: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      httpsTrusted: 200,
      httpsAgain: 200,
      httpsUntrusted: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      // Neither the well known nor the extra certificates with a ca of the caller's own.
      ownCaOther: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      ownCaOtherServer: 404,
    });
  }, 60_000);

  it("applies them before code that imports Node's modules as ES modules, which no hook sees", async () => {
    // The CLI's front runs its work so (a wal command where no wal bundle is built).
    const script = `
      const extraCa = require(${JSON.stringify(EXTRA_CA)}).deferExtraCaCerts();
      if (process.argv[1] === 'now') extraCa.now();
      import('node:https').then((https) => https.get(${JSON.stringify(`${trusted.url}/`)}, (r) => {
        r.resume();
        process.stdout.write(String(r.statusCode));
      }).on('error', (e) => process.stdout.write(e.code)));`;
    const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
    const run = (mode: string) =>
      outputOf(
        spawn(process.execPath, ['-e', script, mode], {
          env: { ...env, PGBP_EXTRA_CA_CERTS: privateCa },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
    expect(await run('now')).toMatchObject({ code: 0, stdout: '404' });
    // Without: the import passes by, and the endpoint is not trusted.
    expect(await run('later')).toMatchObject({ code: 0, stdout: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  }, 60_000);

  it('the prefetcher a wal-fetch starts from Node starts the same way', async () => {
    const store = `file://${mkdtempSync(join(work, 'store-'))}`;
    const pusher = mkdtempSync(join(work, 'pusher-'));
    mkdirSync(join(pusher, 'pg_wal'));
    writeFileSync(join(pusher, 'pg_wal', SEGMENT), segmentBytes());
    const pushed = await runCli(['wal-push', join('pg_wal', SEGMENT), '--store', store], { cwd: pusher });
    expect(pushed.code, pushed.stderr).toBe(0);
    const data = mkdtempSync(join(work, 'data-'));
    mkdirSync(join(data, 'pg_wal'));
    writeFileSync(join(data, 'postmaster.pid'), '');
    writeFileSync(join(data, 'recovery.signal'), '');
    const dir = prefetchDir(data, archiveTag(data, { store }));
    try {
      // The CLI itself (not the launcher): Node read the variable at its start; its prefetcher need not.
      const fetched = await outputOf(
        spawn(process.execPath, [PGBP, 'wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG', '--store', store], {
          cwd: data,
          env: { ...process.env, NODE_EXTRA_CA_CERTS: privateCa },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      expect(fetched.code, fetched.stderr).toBe(0);
      const pid = await waitFor(
        'the prefetcher',
        () => {
          const text =
            existsSync(join(dir, '.prefetcher')) && readFileSync(join(dir, '.prefetcher'), 'utf8').trim();
          return text && /^[1-9][0-9]*$/.test(text) ? text : undefined;
        },
        30_000,
      );
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      expect(environ).toContain(`PGBP_EXTRA_CA_CERTS=${privateCa}`);
      expect(environ.some((line) => line.startsWith('NODE_EXTRA_CA_CERTS='))).toBe(false);
    } finally {
      rmSync(join(data, 'recovery.signal'), { force: true });
      await waitFor('the prefetcher to exit', () => !existsSync(join(dir, '.prefetcher')), 30_000);
    }
  }, 60_000);

  it('an install without the file that applies them stops a wal-fetch above 125, never as "not archived"', () => {
    const install = mkdtempSync(join(tmpdir(), 'pgbp-no-extra-ca-'));
    try {
      mkdirSync(join(install, 'cli'));
      writeFileSync(join(install, 'cli', 'pgbp.cjs'), readFileSync(PGBP));
      const run = spawnSync(
        process.execPath,
        [
          join(install, 'cli', 'pgbp.cjs'),
          'wal-fetch',
          '00000002.history',
          'pg_wal/RECOVERYHISTORY',
          '--store',
          'file:///nowhere',
        ],
        {
          env: { ...process.env, PGBP_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt' },
          encoding: 'utf8',
        },
      );
      expect(run.status).toBe(126);
      expect(run.stderr).toContain("Cannot find module './extra-ca.cjs'");
    } finally {
      rmSync(install, { recursive: true, force: true });
    }
  });
});
