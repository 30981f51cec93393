import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../lib/domain/manifest.js';
import type { RestoreReport } from '../../../lib/domain/verify-report.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { runCli } from '../../support/cli.js';
import { databaseExists, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { createBucket } from '../../support/s3.js';
import { awkwardDatabase, databasesLike, dump, schemasOf } from '../restore/fixture.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-cli-restore-'));
const storeUrl = `file://${join(work, 'nas')}`;
const created: string[] = [];
let source: string;
let manifest: Manifest;

beforeAll(async () => {
  source = await awkwardDatabase('cli_src');
  created.push(source);
  manifest = await dump(new FileStore(join(work, 'nas')), source);
});

afterAll(async () => {
  for (const db of created) await dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

function target(label: string): string {
  const name = uniqueDbName(label);
  created.push(name);
  return name;
}

describe('pgbp verify', () => {
  it('exits 0 and prints the report with --json when every check passes', async () => {
    const run = await runCli(['verify', 'latest', '--database', source, '--store', storeUrl, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as RestoreReport;
    expect(report).toMatchObject({ backupId: manifest.id, mode: 'verify', passed: true });
    expect(await databaseExists(report.target)).toBe(false);
  });

  it('exits non-zero naming the failed assertion, with the query and the value seen', async () => {
    const config = join(work, 'assertions.yml');
    writeFileSync(
      config,
      [
        'stage: local',
        `store: ${storeUrl}`,
        'databases:',
        `  - name: ${source}`,
        '    assertions:',
        '      - name: million accounts',
        '        sql: select count(*) from core.accounts',
        '        expect: { atLeast: 1000000 }',
        '',
      ].join('\n'),
    );
    const run = await runCli(['verify', manifest.id, '--database', source, '--config', config]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('RestoreCheckFailedError');
    expect(run.stderr).toContain('"million accounts" (select count(*) from core.accounts) saw "200"');
    expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
  });
});

describe('pgbp verify --depth', () => {
  it("content: also compares every table's data with the backup's, and the report says so", async () => {
    const run = await runCli([
      'verify',
      'latest',
      '--database',
      source,
      '--store',
      storeUrl,
      '--depth',
      'content',
      '--json',
    ]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as RestoreReport;
    expect(report.depth).toBe('content');
    expect(report.checks.find((c) => c.kind === 'content')).toMatchObject({
      passed: true,
      value: "5 of 5 tables hold exactly the backup's data",
    });
  });

  it("takes the database's configured depth, and the flag over it", async () => {
    const config = join(work, 'depth.yml');
    writeFileSync(
      config,
      [
        'stage: local',
        `store: ${storeUrl}`,
        'databases:',
        `  - name: ${source}`,
        '    restore: { depth: content }',
        '',
      ].join('\n'),
    );
    const configured = await runCli([
      'verify',
      manifest.id,
      '--database',
      source,
      '--config',
      config,
      '--json',
    ]);
    expect((JSON.parse(configured.stdout) as RestoreReport).depth).toBe('content');
    const flagged = await runCli([
      'verify',
      manifest.id,
      '--database',
      source,
      '--config',
      config,
      '--depth',
      'rows',
      '--json',
    ]);
    const report = JSON.parse(flagged.stdout) as RestoreReport;
    expect(report.depth).toBe('rows');
    expect(report.checks.map((c) => c.kind)).not.toContain('content');
  });

  it('refuses a depth it does not know, naming the field', async () => {
    const run = await runCli([
      'verify',
      'latest',
      '--database',
      source,
      '--store',
      storeUrl,
      '--depth',
      'bits',
    ]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('depth: expected "rows" or "content", got "bits"');
  });
});

describe('pgbp restore', () => {
  it('restores the schemas asked for into the target and prints one line', async () => {
    const into = target('cli');
    const run = await runCli([
      'restore',
      'latest',
      '--database',
      source,
      '--target-db',
      into,
      '--schema',
      'core',
      '--schema',
      'auth',
      '--store',
      storeUrl,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(`^${manifest.id}: restored into ${into}, .* 5/5 checks passed\\n$`),
    );
    expect(await schemasOf(into)).toEqual(['auth', 'core', 'public']);
  });

  it('refuses the source as the target before creating anything', async () => {
    const run = await runCli([
      'restore',
      'latest',
      '--database',
      source,
      '--target-db',
      source,
      '--store',
      storeUrl,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^pgbp: InvalidRestoreRequestError: targetDatabase: is the source database/);
    expect(run.stdout).toBe('');
  });
});

describe('pgbp thaw', () => {
  it('says a backup in the file store needs no thaw', async () => {
    const run = await runCli(['thaw', manifest.id, '--database', source, '--store', storeUrl]);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe(`${manifest.id}: STANDARD, not archived: readable now\n`);
  });

  it('asks S3 to thaw a DEEP_ARCHIVE backup and reports it available', async () => {
    const bucket = await createBucket();
    const archived = await dump(new S3Store(bucket, 'p'), source, { storageClass: 'DEEP_ARCHIVE' });
    const run = await runCli([
      'thaw',
      archived.id,
      '--database',
      source,
      '--store',
      `s3://${bucket}/p`,
      '--json',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      backupId: archived.id,
      storageClass: 'DEEP_ARCHIVE',
      state: 'available',
      until: expect.stringMatching(/^\d{4}-/),
    });
  });
});
