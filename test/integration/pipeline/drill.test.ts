import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import type { Manifest } from '../../../lib/domain/manifest.js';
import type { RestoreReport } from '../../../lib/domain/verify-report.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { databasesLike, dump } from '../restore/fixture.js';
import { alertInbox, type Inbox, parseExecution, pgbp } from './harness.js';

/** The recovery drill (statemachines/restore-drill.asl.yml) run by `pgbp drill` on this machine. */

interface DrillSummary {
  readonly databasesChecked: number;
  readonly databases: {
    readonly database: string;
    readonly status: string;
    readonly backupId?: string;
    readonly recoverySeconds?: number;
    readonly error?: { readonly Error: string; readonly Cause: string };
  }[];
}

const work = mkdtempSync(join(tmpdir(), 'pgbp-pipeline-drill-'));
const store = new FileStore(join(work, 'store'));
const created: string[] = [];
let inbox: Inbox;
let config: string;
let manifests: Manifest[];

beforeAll(async () => {
  inbox = await alertInbox('pipeline-drill');
  for (const label of ['ledger', 'users']) {
    const name = uniqueDbName(label);
    created.push(name);
    await createDatabase(
      name,
      'create table entries as select g as id, md5(g::text) as note from generate_series(1, 2000) g',
    );
  }
  // An older backup of each, then the latest: the drill must pick the latest.
  for (const name of created) await dump(store, name);
  manifests = [];
  for (const name of created) manifests.push(await dump(store, name));
  config = await writeConfigFile(work, {
    stage: 'local',
    store: store.url,
    databases: created.map((name) => ({ name })),
    alerts: { console: false, snsTopicArn: inbox.topicArn },
  });
});

afterAll(async () => {
  await inbox?.close();
  for (const name of created) await dropDatabase(name);
  rmSync(work, { recursive: true, force: true });
});

/** Flips one byte in the middle of a stored dump: what a bad disk or a bad copy does. */
async function corrupt(manifest: Manifest): Promise<void> {
  const file = await open(join(store.root, manifest.key), 'r+');
  try {
    const at = Math.floor(manifest.sizeBytes / 2);
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await file.write(byte, 0, 1, at);
  } finally {
    await file.close();
  }
}

describe('pgbp drill on this machine', () => {
  it('restores the latest backup of each database, records its report beside it, and reports each RTO', async () => {
    const run = await pgbp(['drill', '--config', config, '--json']);

    expect(run.code, run.stderr).toBe(0);
    const execution = parseExecution<DrillSummary>(run);
    expect(execution).toMatchObject({ machine: 'restore-drill', status: 'SUCCEEDED' });
    expect(execution.summary.databasesChecked).toBe(2);
    for (const manifest of manifests) {
      const result = execution.summary.databases.find((d) => d.database === manifest.database);
      expect(result).toMatchObject({ status: 'verified', backupId: manifest.id });
      const report = JSON.parse(
        (await store.getBytes(keysFor(store.prefix, manifest.id).verify)).toString(),
      ) as RestoreReport;
      expect(report).toMatchObject({ backupId: manifest.id, mode: 'verify', passed: true });
      expect(report.recoverySeconds).toBeGreaterThan(0);
      expect(result?.recoverySeconds).toBe(report.recoverySeconds);
    }
    expect(await databasesLike(...created.map((d) => `pgbp_verify_${d}`))).toEqual([]);
    expect(inbox.notifications()).toEqual([]);
  });

  it('fails and alerts, naming the database, when a backup is damaged; the other database is still drilled', async () => {
    const [damaged, intact] = manifests as [Manifest, Manifest];
    await corrupt(damaged);

    const run = await pgbp(['drill', '--config', config, '--json']);

    expect(run.code).toBe(1);
    const execution = parseExecution<DrillSummary>(run);
    expect(execution.error?.name).toBe('RestoreCheckFailedError');
    expect(execution.summary.databases.find((d) => d.database === intact.database)).toMatchObject({
      status: 'verified',
      backupId: intact.id,
    });
    expect(execution.summary.databases.find((d) => d.database === damaged.database)).toMatchObject({
      status: 'failed',
      error: { Error: 'CorruptBackupError' },
    });
    const [alert] = await inbox.received(1);
    expect(alert?.Subject).toBe(`[CRITICAL] Restore check failed: ${damaged.database} (CorruptBackupError)`);
    expect(alert?.Message).toContain(`backup ${damaged.id} is damaged`);
    expect(await databasesLike(`pgbp_verify_${damaged.database}`)).toEqual([]);
  });
});
