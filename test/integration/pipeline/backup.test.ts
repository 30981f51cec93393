import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBackups } from '../../../lib/catalog/backups.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { putBackup } from '../../support/manifests.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { alertInbox, type Inbox, parseExecution, pgbp } from './harness.js';

/**
 * The backup state machine (statemachines/backup.asl.yml) run by `pgbp backup` on this machine:
 * real pg_dump in the task processes, the real Lambdas in-process, alerts through moto SNS.
 */

interface BackupSummary {
  readonly databases: {
    readonly database: string;
    readonly status: string;
    readonly backupId?: string;
    readonly sizeBytes?: number;
    readonly size?: { readonly status: string; readonly reasons: string[] };
    readonly error?: { readonly Error: string; readonly Cause: string };
  }[];
  readonly retention: { readonly database: string; readonly kept: number; readonly deleted: number }[];
}

const work = mkdtempSync(join(tmpdir(), 'pgbp-pipeline-backup-'));
const created: string[] = [];
const TABLE = 'create table items as select g as id, md5(g::text) as note from generate_series(1, 3000) g';

async function database(label: string, sql: string | undefined = TABLE): Promise<string> {
  const name = uniqueDbName(label);
  created.push(name);
  await createDatabase(name, sql);
  return name;
}

/** A stage config in its own directory: a file store there, alerts to the topic only. */
async function stage(name: string, inbox: Inbox, databases: Record<string, unknown>[]) {
  const dir = join(work, name);
  const store = join(dir, 'store');
  await mkdir(dir);
  const config = await writeConfigFile(dir, {
    stage: 'local',
    store: `file://${store}`,
    databases,
    alerts: { console: false, snsTopicArn: inbox.topicArn },
  });
  return { config, store: new FileStore(store) };
}

let inbox: Inbox;

beforeAll(async () => {
  inbox = await alertInbox('pipeline-backup');
});

afterAll(async () => {
  await inbox?.close();
  for (const name of created) await dropDatabase(name);
  rmSync(work, { recursive: true, force: true });
});

describe('pgbp backup on this machine', () => {
  it('backs up two databases, checks their sizes and applies retention, with no alert', async () => {
    const [alpha, beta] = [await database('alpha'), await database('beta')];
    const { config, store } = await stage('healthy', inbox, [{ name: alpha }, { name: beta }]);
    const before = inbox.notifications().length;

    const run = await pgbp(['backup', '--config', config, '--json']);

    expect(run.code, run.stderr).toBe(0);
    const execution = parseExecution<BackupSummary>(run);
    expect(execution).toMatchObject({ machine: 'backup', status: 'SUCCEEDED', error: null });
    const backups = await listBackups(store);
    expect(backups.map((b) => b.manifest.database).sort()).toEqual([alpha, beta].sort());
    expect(execution.summary.databases).toEqual(
      expect.arrayContaining(
        backups.map((b) => ({
          database: b.manifest.database,
          status: 'succeeded',
          backupId: b.manifest.id,
          sizeBytes: b.manifest.sizeBytes,
          size: { status: 'ok', reasons: [] },
        })),
      ),
    );
    expect(execution.summary.retention.map((r) => [r.database, r.kept, r.deleted]).sort()).toEqual(
      [
        [alpha, 1, 0],
        [beta, 1, 0],
      ].sort(),
    );
    expect(run.stderr).toBe('');
    expect(inbox.notifications().slice(before)).toEqual([]);
  });

  it('prints each state as it runs and a report, without --json', async () => {
    const alpha = await database('steps');
    const { config } = await stage('steps', inbox, [{ name: alpha }]);
    const run = await pgbp(['backup', '--config', config]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.split('\n');
    for (const step of [
      '  BackupDatabases started',
      `    Dump [${alpha}] started`,
      `    CheckSize [${alpha}] started`,
      '  ApplyRetention started',
    ]) {
      expect(lines).toContain(step);
    }
    expect(run.stdout).toMatch(new RegExp(`\\n  ${alpha}  ${alpha}-\\d{8}T\\d{6}Z  [\\d.]+ KiB  size ok\\n`));
    expect(run.stdout).toMatch(
      /\nbackup succeeded in [\d.]+ s \(arn:aws:states:[^)]+:execution:pg-backup-pipeline-local-backup:/,
    );
  });

  it('backs up the other database when one dump fails, alerts naming the failed one, and fails', async () => {
    const good = await database('good');
    const missing = uniqueDbName('missing');
    const { config, store } = await stage('one-fails', inbox, [{ name: good }]);
    const before = inbox.notifications().length;

    const run = await pgbp([
      'backup',
      '--config',
      config,
      '--database',
      missing,
      '--database',
      good,
      '--json',
    ]);

    expect(run.code).toBe(1);
    const execution = parseExecution<BackupSummary>(run);
    expect(execution.status).toBe('FAILED');
    expect(execution.error?.name).toBe('BackupFailed');
    expect((await listBackups(store)).map((b) => b.manifest.database)).toEqual([good]);
    const failed = execution.summary.databases.find((d) => d.database === missing);
    expect(failed).toMatchObject({ status: 'failed', error: { Error: 'DumpFailedError' } });
    expect(failed?.error?.Cause).toContain(`database "${missing}" does not exist`);
    // Retention ran all the same.
    expect(execution.summary.retention.map((r) => r.database)).toContain(good);

    const alerts = (await inbox.received(before + 1)).slice(before);
    expect(alerts.map((a) => a.Subject)).toEqual([`[CRITICAL] Backup failed: ${missing} (DumpFailedError)`]);
    expect(alerts[0]?.Message).toContain(`Database:  ${missing}`);
    expect(alerts[0]?.Message).toContain(`Execution: ${execution.executionId}`);
  });

  it('alerts an empty dump as a size anomaly and fails, and a dump far below its baseline as a warning', async () => {
    const empty = await database('empty', 'create table nothing_yet (id int)');
    const shrunk = await database('shrunk');
    const { config, store } = await stage('sizes', inbox, [{ name: empty }, { name: shrunk }]);
    // Yesterday's backup of `shrunk` was 1 MiB: today's few KiB are far below half of it.
    await putBackup(store, shrunk, new Date(Date.now() - 86_400_000), { size: 1024 * 1024 });
    const before = inbox.notifications().length;

    const run = await pgbp(['backup', '--config', config, '--json']);

    expect(run.code).toBe(1);
    const execution = parseExecution<BackupSummary>(run);
    expect(execution.summary.databases.find((d) => d.database === empty)).toMatchObject({
      status: 'failed',
      error: { Error: 'SizeOutOfRangeError' },
    });
    expect(execution.summary.databases.find((d) => d.database === shrunk)).toMatchObject({
      status: 'succeeded',
      size: { status: 'warning' },
    });
    const alerts = (await inbox.received(before + 2)).slice(before);
    expect(alerts.map((a) => a.Subject).sort()).toEqual(
      [
        `[CRITICAL] Backup size anomaly: ${empty} (SizeOutOfRangeError)`,
        `[WARNING] Backup size anomaly: ${shrunk}`,
      ].sort(),
    );
    const empties = alerts.find((a) => a.Subject.includes(empty));
    expect(empties?.Message).toMatch(/at or below 2\.0 KiB: empty or near-empty/);
    const warning = alerts.find((a) => a.Subject.includes(shrunk));
    expect(warning?.Message).toMatch(
      /of the median of the last 1 good backup \(1\.0 MiB\); below the 50 % warning line/,
    );
  });
});
