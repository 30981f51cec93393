import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBackups } from '../../../lib/catalog/backups.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { main } from '../../../tasks/dump.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { sink } from '../../support/sink.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-task-'));
const configFile = join(work, 'stage.yml');
let database: string;

beforeAll(async () => {
  database = uniqueDbName('task');
  await createDatabase(
    database,
    'create table t as select g as id, md5(g::text) as v from generate_series(1, 20000) g',
  );
  writeFileSync(configFile, `stage: dev\nstore: file://${join(work, 'store')}\n`);
});

afterAll(async () => {
  await dropDatabase(database);
  rmSync(work, { recursive: true, force: true });
});

describe('the dump task under Step Functions', () => {
  it('heartbeats while running and sends the manifest through the task token', async () => {
    const sfn = mockClient(SFNClient);
    try {
      sfn.onAnyCommand().resolves({});
      const stdout = sink();
      const code = await main({
        env: {
          ...process.env,
          PGBP_DATABASE: database,
          PGBP_CONFIG: configFile,
          TASK_TOKEN: 'token-1',
          PGBP_HEARTBEAT_SECONDS: '0.01',
        },
        stdout: stdout.stream,
        stderr: sink().stream,
        sfn: () => new SFNClient({}),
      });
      expect(code).toBe(0);
      const [stored] = await listBackups(new FileStore(join(work, 'store')), database);
      const success = sfn.commandCalls(SendTaskSuccessCommand);
      expect(success).toHaveLength(1);
      const output = JSON.parse(success[0]?.args[0].input.output ?? '{}');
      expect(output).toMatchObject({
        id: stored?.manifest.id,
        sha256: stored?.manifest.sha256,
        tableCount: 1,
      });
      expect(output.tables).toBeUndefined();
      expect(sfn.commandCalls(SendTaskHeartbeatCommand).length).toBeGreaterThan(0);
      expect(stdout.text()).toBe('');
    } finally {
      sfn.restore();
    }
  });

  it('sends the typed error name and a cause without the password when the dump fails', async () => {
    const sfn = mockClient(SFNClient);
    try {
      sfn.onAnyCommand().resolves({});
      const stderr = sink();
      const code = await main({
        env: {
          ...process.env,
          PGBP_DATABASE: 'pgbp_no_such_database',
          PGBP_CONFIG: configFile,
          PGPASSWORD: 'Hunter2-secret',
          TASK_TOKEN: 'token-2',
        },
        stdout: sink().stream,
        stderr: stderr.stream,
        sfn: () => new SFNClient({}),
      });
      expect(code).toBe(1);
      const failure = sfn.commandCalls(SendTaskFailureCommand)[0]?.args[0].input;
      expect(failure?.error).toBe('DumpFailedError');
      expect(failure?.cause).toMatch(/database "pgbp_no_such_database" does not exist/);
      expect(`${failure?.cause}${stderr.text()}`).not.toContain('Hunter2-secret');
      expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
    } finally {
      sfn.restore();
    }
  });
});

describe('the bundled entrypoint the container runs', () => {
  it('dumps a database with node alone and prints the manifest', () => {
    const out = join(work, 'bundle');
    execFileSync(process.execPath, ['tasks/build.mjs', out]);
    const run = spawnSync(process.execPath, [join(out, 'dump.mjs')], {
      env: { ...process.env, PGBP_DATABASE: database, PGBP_CONFIG: configFile },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    // Its only output besides the result: structured log lines, none of them an error.
    const logs = run.stderr
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { level: string });
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.filter((l) => l.level !== 'info')).toEqual([]);
    expect(JSON.parse(run.stdout)).toMatchObject({
      database,
      format: 'custom',
      compression: { codec: 'zstd' },
    });
  });
});
