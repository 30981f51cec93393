import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepEvent } from '../../../cli/executions.js';
import { runLocalExecution } from '../../../cli/local-runner.js';
import { loadConfig } from '../../../lib/config.js';
import type { Manifest } from '../../../lib/domain/manifest.js';
import { consoleAlerter } from '../../../lib/notify/alerter.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { snapshot } from '../../support/compare.js';
import { createDatabase, databaseExists, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { createBucket } from '../../support/s3.js';
import { dump } from '../restore/fixture.js';
import { alertInbox, type Inbox, parseExecution, pgbp, ROOT } from './harness.js';

/** A manual restore through statemachines/restore.asl.yml, run on this machine. */

const work = mkdtempSync(join(tmpdir(), 'pgbp-pipeline-restore-'));
const store = new FileStore(join(work, 'store'));
const created: string[] = [];
let inbox: Inbox;
let config: string;
let source: string;
let manifest: Manifest;

const SOURCE_SQL = `
  create schema core;
  create table core.accounts (id int primary key, owner text not null, opened date);
  insert into core.accounts select g, 'owner ' || g, date '2020-01-01' + g from generate_series(1, 500) g;
  create table public.audit (at timestamptz default now(), note text);
  insert into public.audit (note) select md5(g::text) from generate_series(1, 300) g;
  create sequence core.ticket_seq start 40;
  select nextval('core.ticket_seq');
`;

function target(label: string): string {
  const name = uniqueDbName(label);
  created.push(name);
  return name;
}

beforeAll(async () => {
  inbox = await alertInbox('pipeline-restore');
  source = uniqueDbName('restore_src');
  created.push(source);
  await createDatabase(source, SOURCE_SQL);
  manifest = await dump(store, source);
  config = await writeConfigFile(work, {
    stage: 'local',
    store: store.url,
    databases: [{ name: source }],
    alerts: { console: false, snsTopicArn: inbox.topicArn },
  });
});

afterAll(async () => {
  await inbox?.close();
  for (const name of created) await dropDatabase(name);
  rmSync(work, { recursive: true, force: true });
});

describe('pgbp restore --via-state-machine', () => {
  it('fails a bad request in Prepare, alerts it, and creates nothing', async () => {
    const into = target('never');
    const before = inbox.notifications().length;
    const run = await pgbp([
      'restore',
      'not-a-backup-id',
      '--database',
      source,
      '--target-db',
      into,
      '--config',
      config,
      '--via-state-machine',
    ]);

    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`  Prepare [${source}] failed: InvalidRestoreRequestError: backup: `);
    expect(run.stdout).not.toMatch(/^ {2}Restore \[/m);
    expect(run.stdout).toMatch(/\nrestore FAILED after [\d.]+ s: InvalidRestoreRequestError: backup: /);
    expect(await databaseExists(into)).toBe(false);
    const alerts = (await inbox.received(before + 1)).slice(before);
    expect(alerts.map((a) => a.Subject)).toEqual(['[CRITICAL] Restore failed (InvalidRestoreRequestError)']);
  });

  it('restores the latest backup into a new database equal to the source, and sends the report with its RTO', async () => {
    const into = target('restored');
    const before = inbox.notifications().length;
    const run = await pgbp([
      'restore',
      'latest',
      '--database',
      source,
      '--target-db',
      into,
      '--config',
      config,
      '--via-state-machine',
      '--json',
    ]);

    expect(run.code, run.stderr).toBe(0);
    const execution = parseExecution<{ backupId: string; target: string; recoverySeconds: number }>(run);
    expect(execution.summary).toMatchObject({ backupId: manifest.id, target: into, restored: true });
    expect(await snapshot(into)).toEqual(await snapshot(source));
    const [notice] = (await inbox.received(before + 1)).slice(before);
    expect(notice?.Subject).toBe(`[INFO] Restore completed: ${source}`);
    expect(notice?.Message).toContain(`Backup ${manifest.id} of ${source} was restored into ${into}.`);
    expect(notice?.Message).toContain(
      `Recovery time (RTO): ${execution.summary.recoverySeconds.toFixed(1)} s, from the request to the checks done.`,
    );
  });

  it('refuses an existing target in Prepare, before any thaw is requested, and leaves it as it was', async () => {
    const bucket = await createBucket();
    const s3 = new S3Store(bucket, 'backups');
    const archived = await dump(s3, source, { storageClass: 'DEEP_ARCHIVE' });
    const s3Config = await writeConfigFile(mkdtempSync(join(work, 's3-')), {
      stage: 'local',
      store: `s3://${bucket}/backups`,
      alerts: { console: false },
    });
    const into = target('taken');
    await createDatabase(into, 'create table mine (x int); insert into mine values (42)');
    const steps: StepEvent[] = [];
    const result = await runLocalExecution({
      machine: 'restore',
      input: { database: source, backup: archived.id, targetDatabase: into },
      config: loadConfig(s3Config),
      configFile: s3Config,
      store: s3,
      env: process.env,
      cwd: ROOT,
      alerter: consoleAlerter(() => {}),
      onStep: (e) => steps.push(e),
    });

    expect(result.status).toBe('FAILED');
    expect(result.error).toMatchObject({
      name: 'InvalidRestoreRequestError',
      cause: expect.stringContaining(`targetDatabase: ${into} already exists`),
    });
    const entered = steps.filter((s) => s.kind === 'entered').map((s) => s.state);
    expect(entered).toContain('Prepare');
    expect(entered).not.toContain('Thaw');
    expect(entered).not.toContain('Restore');
    expect((await s3.head(archived.key))?.thaw.state).toBe('archived');
    const left = await withClient(into, (c) => c.query<{ x: number }>('select x from mine'));
    expect(left.rows).toEqual([{ x: 42 }]);
  });

  it('thaws a backup in DEEP_ARCHIVE, then restores it', async () => {
    const bucket = await createBucket();
    const s3 = new S3Store(bucket, 'backups');
    const archived = await dump(s3, source, { storageClass: 'DEEP_ARCHIVE' });
    const s3Config = await writeConfigFile(mkdtempSync(join(work, 's3-')), {
      stage: 'local',
      store: `s3://${bucket}/backups`,
      alerts: { console: false },
    });
    const into = target('thawed');
    const steps: StepEvent[] = [];
    const result = await runLocalExecution({
      machine: 'restore',
      input: { database: source, backup: archived.id, targetDatabase: into },
      config: loadConfig(s3Config),
      configFile: s3Config,
      store: s3,
      env: process.env,
      cwd: ROOT,
      alerter: consoleAlerter(() => {}),
      onStep: (e) => steps.push(e),
      // moto completes a thaw at once; should it report one under way, poll again in a second.
      substitutions: { ThawPollSeconds: '1' },
    });

    expect(result.error).toBeUndefined();
    expect(result.status).toBe('SUCCEEDED');
    const entered = steps.filter((s) => s.kind === 'entered').map((s) => s.state);
    expect(entered).toContain('Thaw');
    expect(entered.indexOf('Restore')).toBeGreaterThan(entered.lastIndexOf('Thaw'));
    expect((await s3.head(archived.key))?.thaw.state).toBe('available');
    expect(await snapshot(into)).toEqual(await snapshot(source));
  });
});
