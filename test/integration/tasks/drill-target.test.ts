import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../lib/domain/manifest.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { main } from '../../../tasks/restore.js';
import { dropDatabase } from '../../support/pg.js';
import { freePort } from '../../support/ports.js';
import { sink } from '../../support/sink.js';
import { awkwardDatabase, databasesLike, dump } from '../restore/fixture.js';

/**
 * Where a drill restores. The source server is made unreachable for the task (its libpq
 * variables point at a port nothing listens on): a drill that needed it could not pass.
 */
const work = mkdtempSync(join(tmpdir(), 'pgbp-drill-target-'));
let source: string;
let manifest: Manifest;
let closedPort: number;

function configFile(name: string, drill: string[]): string {
  const file = join(work, `${name}.yml`);
  writeFileSync(
    file,
    [
      'stage: dev',
      `store: file://${join(work, 'store')}`,
      'databases:',
      `  - name: ${source}`,
      '    assertions:',
      '      - name: users restored',
      '        sql: select count(*) from auth.users',
      '        expect: { equals: 50 }',
      ...drill,
      '',
    ].join('\n'),
  );
  return file;
}

async function verify(config: string, env: NodeJS.ProcessEnv = {}) {
  const stdout = sink();
  const stderr = sink();
  const code = await main({
    env: {
      ...process.env,
      PGBP_RESTORE_REQUEST: JSON.stringify({ mode: 'verify', database: source, backup: 'latest' }),
      PGBP_CONFIG: config,
      ...env,
    },
    stdout: stdout.stream,
    stderr: stderr.stream,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

beforeAll(async () => {
  source = await awkwardDatabase('drill_src');
  manifest = await dump(new FileStore(join(work, 'store')), source);
  closedPort = await freePort();
}, 60_000);

afterAll(async () => {
  await dropDatabase(source);
  rmSync(work, { recursive: true, force: true });
});

describe('a drill', () => {
  it('restores into a scratch server of its own by default, never touching the source server', async () => {
    const run = await verify(configFile('default', []), { PGHOST: '127.0.0.1', PGPORT: String(closedPort) });
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ backupId: manifest.id, mode: 'verify', passed: true });
    expect(report.checks).toContainEqual(expect.objectContaining({ name: 'users restored', passed: true }));
    // Nothing was created on the shared server either.
    expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
  }, 120_000);

  it('restores into the configured drill server', async () => {
    const config = configFile('server', [
      'drill:',
      '  target: server',
      `  server: { host: 127.0.0.1, port: ${process.env.PGPORT ?? 5432}, user: ${process.env.PGUSER ?? 'postgres'} }`,
    ]);
    const run = await verify(config, { PGHOST: '127.0.0.1', PGPORT: String(closedPort) });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ backupId: manifest.id, passed: true });
  }, 120_000);

  it('uses the source server only when the config says so', async () => {
    const config = configFile('source', ['drill: { target: source }']);
    const run = await verify(config, { PGHOST: '127.0.0.1', PGPORT: String(closedPort) });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`127.0.0.1:${closedPort}`);
  }, 120_000);
});
