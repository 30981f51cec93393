import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBaseBackup } from '../../../lib/backup/base-backup.js';
import type { BaseManifest } from '../../../lib/domain/base-backup.js';
import { baseBackupKeys } from '../../../lib/domain/physical-layout.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { writeConfigFile } from '../../support/pipeline.js';
import {
  postgresDir,
  type ScratchCluster,
  scratchRoot,
  startCluster,
} from '../../support/scratch-cluster.js';
import {
  layoutArchiveCommand,
  layoutRestoreCommand,
  switchAndWaitArchived,
} from '../../support/wal-archive.js';
import { alertInbox, type Inbox, parseExecution, pgbp } from './harness.js';

/** The point-in-time recovery drill (statemachines/pitr-drill.asl.yml) run by `pgbp drill --pitr` here. */

interface PitrSummary {
  readonly cluster: string;
  readonly baseId: string;
  readonly recoveryPoint: string | null;
  readonly rtoSeconds: number;
  readonly segmentsReplayed: number;
}

const CLUSTER = 'ledger-main';
let root: string;
let source: ScratchCluster;
let store: FileStore;
let base: BaseManifest;
let config: string;
let inbox: Inbox;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  inbox = await alertInbox('pitr-drill');
  root = scratchRoot();
  const storeDir = postgresDir(root, 'store');
  store = new FileStore(storeDir);
  source = await startCluster({
    root,
    walSegmentMb: 1,
    settings: {
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: layoutArchiveCommand(root, storeDir, CLUSTER),
    },
  });
  source.sql('create table entries (id int primary key, note text)');
  base = await runBaseBackup(
    {
      cluster: CLUSTER,
      connection: { host: '127.0.0.1', port: source.port, user: 'postgres', database: 'postgres' },
      store,
      compression: { level: 1, threads: 1 },
      checkpoint: 'fast',
      walWaitMs: 60_000,
      storageClass: 'STANDARD',
    },
    { env: process.env, logger: silentLogger, pollMs: 100 },
  );
  source.sql('insert into entries select g, md5(g::text) from generate_series(1, 5000) g');
  await switchAndWaitArchived(source);
  config = await writeConfigFile(root, {
    stage: 'local',
    store: store.url,
    wal: { cluster: CLUSTER },
    databases: [
      {
        name: 'postgres',
        assertions: [
          {
            name: 'entries after the base backup',
            sql: 'select count(*) from entries',
            expect: { equals: 5000 },
          },
        ],
      },
    ],
    alerts: { console: false, snsTopicArn: inbox.topicArn },
  });
  env = {
    ...process.env,
    PGBP_RESTORE_COMMAND: layoutRestoreCommand(root, storeDir, CLUSTER),
    PGUSER: 'postgres',
  };
});

afterAll(async () => {
  await inbox?.close();
  source?.remove();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('pgbp drill --pitr on this machine', () => {
  it('recovers the newest base backup with the archive, checks it, and stores the report with the RTO and recovery point', async () => {
    const run = await pgbp(['drill', '--pitr', '--config', config, '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const execution = parseExecution<PitrSummary>(run);
    expect(execution).toMatchObject({ machine: 'pitr-drill', status: 'SUCCEEDED' });
    const report = JSON.parse(
      readFileSync(join(store.root, baseBackupKeys('', CLUSTER, base.id).drillReport), 'utf8'),
    ) as PitrSummary & { passed: boolean; checks: { name: string; passed: boolean }[]; targetKind: string };
    expect(report).toMatchObject({ cluster: CLUSTER, baseId: base.id, passed: true, targetKind: 'latest' });
    expect(report.rtoSeconds).toBeGreaterThan(0);
    expect(report.segmentsReplayed).toBeGreaterThan(0);
    expect(Date.parse(report.recoveryPoint ?? '')).toBeGreaterThan(Date.parse(base.stopTime));
    expect(report.checks).toContainEqual(
      expect.objectContaining({ name: 'postgres: entries after the base backup', passed: true }),
    );
    expect(inbox.notifications()).toEqual([]);
    // Nothing of the scratch cluster is left.
    expect(readdirSync('/tmp').filter((n) => n.startsWith('pgbp-pitr-drill-'))).toEqual([]);
  });

  it('fails and alerts naming the cluster when the archive is broken', async () => {
    source.sql("insert into entries select g, 'later' from generate_series(5001, 6000) g");
    await switchAndWaitArchived(source);
    const folder = join(store.root, '~cluster', CLUSTER, 'wal', base.stopWal.slice(0, 16));
    const after = readdirSync(folder)
      .filter((n) => /^[0-9A-F]{24}-/.test(n) && n.slice(0, 24) > base.stopWal)
      .sort();
    expect(after.length).toBeGreaterThan(1);
    rmSync(join(folder, after[0] as string));
    const run = await pgbp(['drill', '--pitr', '--config', config, '--json'], env);
    expect(run.code).toBe(1);
    expect(parseExecution(run).error?.name).toBe('RecoveryRefusedError');
    const [alert] = await inbox.received(1);
    expect(alert?.Subject).toContain(`cluster ${CLUSTER}`);
    expect(alert?.Message).toContain('is missing from the archive');
  });
});
