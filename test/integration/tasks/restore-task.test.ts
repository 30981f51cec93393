import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import type { Manifest } from '../../../lib/domain/manifest.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { main } from '../../../tasks/restore.js';
import { dropDatabase } from '../../support/pg.js';
import { sink } from '../../support/sink.js';
import { awkwardDatabase, databasesLike, dump } from '../restore/fixture.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-restore-task-'));
const configFile = join(work, 'stage.yml');
let source: string;
let manifest: Manifest;

beforeAll(async () => {
  source = await awkwardDatabase('task_src');
  manifest = await dump(new FileStore(join(work, 'store')), source);
  writeFileSync(
    configFile,
    [
      'stage: dev',
      `store: file://${join(work, 'store')}`,
      'databases:',
      `  - name: ${source}`,
      '    assertions:',
      '      - name: users restored',
      '        sql: select count(*) from auth.users',
      '        expect: { equals: 50 }',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await dropDatabase(source);
  rmSync(work, { recursive: true, force: true });
});

async function runTask(request: unknown, extra: NodeJS.ProcessEnv = {}) {
  const sfn = mockClient(SFNClient);
  sfn.onAnyCommand().resolves({});
  const stdout = sink();
  const stderr = sink();
  try {
    const code = await main({
      env: {
        ...process.env,
        PGBP_RESTORE_REQUEST: JSON.stringify(request),
        PGBP_CONFIG: configFile,
        TASK_TOKEN: 'token-r',
        ...extra,
      },
      stdout: stdout.stream,
      stderr: stderr.stream,
      sfn: () => new SFNClient({}),
    });
    return {
      code,
      success: sfn
        .commandCalls(SendTaskSuccessCommand)
        .map((c) => JSON.parse(c.args[0].input.output ?? '{}')),
      failure: sfn.commandCalls(SendTaskFailureCommand).map((c) => c.args[0].input),
      stdout: stdout.text(),
      stderr: stderr.text(),
    };
  } finally {
    sfn.restore();
  }
}

describe('the restore task under Step Functions', () => {
  it('verifies with the configured assertions and sends a summary through the task token', async () => {
    const run = await runTask({ mode: 'verify', database: source, backup: 'latest' });
    expect(run.code).toBe(0);
    expect(run.failure).toEqual([]);
    expect(run.success).toHaveLength(1);
    const summary = run.success[0];
    expect(summary).toMatchObject({
      backupId: manifest.id,
      mode: 'verify',
      passed: true,
      tableCount: 6,
      rowCount: 3000 + 200 + 50 + 90,
    });
    expect(summary.checks).toContainEqual({ name: 'users restored', kind: 'assertion', passed: true });
    expect(summary.tables).toBeUndefined();
    expect(run.stdout).toBe('');
  });

  it('sends RestoreCheckFailedError naming the assertion when one fails', async () => {
    const failing = join(work, 'failing.yml');
    writeFileSync(
      failing,
      [
        'stage: dev',
        `store: file://${join(work, 'store')}`,
        'databases:',
        `  - name: ${source}`,
        '    assertions:',
        '      - name: no failed payments',
        `        sql: select count(*) = 0 from core.transactions where status = 'failed'`,
        '        expect: { isTrue: true }',
        '',
      ].join('\n'),
    );
    const run = await runTask({ mode: 'verify', database: source }, { PGBP_CONFIG: failing });
    expect(run.code).toBe(1);
    expect(run.success).toEqual([]);
    expect(run.failure[0]?.error).toBe('RestoreCheckFailedError');
    expect(run.failure[0]?.cause).toContain('"no failed payments"');
    expect(run.failure[0]?.cause).toContain('saw false');
    expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
  });

  it('sends InvalidRestoreRequestError for a malformed request, without a secret in it', async () => {
    const run = await runTask(
      { mode: 'restore', database: source, targetDatabase: source },
      { PGPASSWORD: 'Hunter2-secret' },
    );
    expect(run.code).toBe(1);
    expect(run.failure[0]?.error).toBe('InvalidRestoreRequestError');
    expect(run.failure[0]?.cause).toMatch(/^targetDatabase: is the source database/);
    expect(`${run.failure[0]?.cause}${run.stderr}`).not.toContain('Hunter2-secret');
  });

  it('prints the whole report as JSON when run without a task token', async () => {
    const stdout = sink();
    const code = await main({
      env: {
        ...process.env,
        PGBP_RESTORE_REQUEST: JSON.stringify({ mode: 'verify', database: source, backup: manifest.id }),
        PGBP_CONFIG: configFile,
      },
      stdout: stdout.stream,
      stderr: sink().stream,
    });
    expect(code).toBe(0);
    const report = JSON.parse(stdout.text());
    expect(report).toMatchObject({ backupId: manifest.id, passed: true });
    expect(report.tables).toHaveLength(6);
  });
});

describe('the restore task with a primary and a secondary store', () => {
  it('restores the secondary copy of a backup the primary lacks, and says which copy it read', async () => {
    // A degraded run's backup: in the secondary store alone.
    const nas = join(work, 'nas');
    mkdirSync(nas);
    const twoStores = join(work, 'two-stores.yml');
    writeFileSync(
      twoStores,
      [
        'stage: dev',
        'stores:',
        `  primary: { url: "file://${nas}" }`,
        `  secondary: { url: "file://${join(work, 'store')}" }`,
        'databases:',
        `  - name: ${source}`,
        '',
      ].join('\n'),
    );
    const run = await runTask(
      { mode: 'verify', database: source, backup: 'latest' },
      { PGBP_CONFIG: twoStores },
    );
    expect(run.failure).toEqual([]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.success).toEqual([
      expect.objectContaining({
        backupId: manifest.id,
        passed: true,
        copy: {
          role: 'secondary',
          url: `file://${join(work, 'store')}`,
          passedOver: [
            expect.objectContaining({ role: 'primary', reason: expect.stringMatching(/^missing: /) }),
          ],
        },
      }),
    ]);
    // The verify report lies beside the copy that was read.
    expect(existsSync(join(work, 'store', keysFor('', manifest.id).verify))).toBe(true);
    expect(existsSync(join(nas, keysFor('', manifest.id).verify))).toBe(false);
  });
});
