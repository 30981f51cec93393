import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler } from '../../../functions/notify.js';
import { withTempDir } from '../../support/manifests.js';
import {
  createTopic,
  startServer,
  subscribeHttp,
  type TestServer,
  writeConfigFile,
} from '../../support/pipeline.js';

interface Notification {
  readonly Type: string;
  readonly Subject: string;
  readonly Message: string;
}

function bodies(server: TestServer): Notification[] {
  return server.requests.map((r) => JSON.parse(r.body) as Notification);
}

describe('notify publishing to SNS (moto)', () => {
  let everything: TestServer;
  let criticalOnly: TestServer;
  let retentionOnly: TestServer;

  beforeAll(async () => {
    const topic = await createTopic('alerts');
    everything = await startServer();
    criticalOnly = await startServer();
    retentionOnly = await startServer();
    // moto leaves message attributes out of HTTP deliveries, but applies filter policies on
    // them: what each subscriber receives shows the attributes reached SNS.
    await subscribeHttp(topic, `${everything.url}/all`);
    await subscribeHttp(topic, `${criticalOnly.url}/pager`, { severity: ['critical'] });
    await subscribeHttp(topic, `${retentionOnly.url}/storage-team`, { kind: ['retention-blocked'] });
    await withTempDir(async (dir) => {
      process.env.PGBP_CONFIG = await writeConfigFile(dir, {
        stage: 'prod',
        mode: 'aws',
        store: 's3://pgbp-unused',
        alerts: { console: false },
      });
      process.env.PGBP_ALERTS_TOPIC_ARN = topic;
      // The deployed handler reads its config once, on the first call.
      await handler({ kind: 'backup-failed', error: { Error: 'States.Timeout' } });
    });
    await everything.waitFor(1);
    everything.requests.length = 0;
    criticalOnly.requests.length = 0;
  });

  afterAll(async () => {
    await Promise.all([everything, criticalOnly, retentionOnly].map((s) => s?.close()));
    delete process.env.PGBP_CONFIG;
    delete process.env.PGBP_ALERTS_TOPIC_ARN;
  });

  it('delivers a failed backup to subscribers with a short subject, a readable body and no secrets', async () => {
    const result = await handler({
      database: 'global_remit',
      backupId: 'global_remit-20260620T020000Z',
      execution: 'arn:aws:states:eu-west-1:123456789012:execution:backup:nightly-20260620',
      connection: { password: 'hunter2' },
      error: {
        Error: 'DumpFailedError',
        Cause: JSON.stringify({
          errorType: 'DumpFailedError',
          errorMessage:
            'pg_dump: error: connection to postgres://backup:hunter2@db.prod.internal/global_remit failed',
          trace: ['DumpFailedError: pg_dump: error', '    at dump (/var/task/dump.mjs:1:1)'],
        }),
      },
    });
    expect(result).toMatchObject({ kind: 'backup-failed', severity: 'critical' });
    const [delivered] = await everything.waitFor(1);
    const note = JSON.parse(delivered?.body ?? '{}') as Notification;
    expect(note.Type).toBe('Notification');
    expect(note.Subject).toBe('[CRITICAL] Backup failed: global_remit (DumpFailedError)');
    expect(note.Message).toContain('Backup:    global_remit-20260620T020000Z');
    expect(note.Message).toContain(
      'Execution: arn:aws:states:eu-west-1:123456789012:execution:backup:nightly-20260620',
    );
    expect(note.Message).toContain(
      'Cause: pg_dump: error: connection to postgres://backup:***@db.prod.internal/global_remit failed',
    );
    expect(note.Message).toContain('What to do next:\n- Read the failed step in the execution');
    expect(delivered?.body).not.toContain('hunter2');
    expect(bodies(criticalOnly).map((n) => n.Subject)).toEqual([note.Subject]);
    expect(retentionOnly.requests).toEqual([]);
  });

  it('alerts on the size warning the state machine passes on from CheckSize', async () => {
    await handler({
      kind: 'size-anomaly',
      database: 'global_remit',
      backupId: 'global_remit-20260620T020000Z',
      execution: 'arn:aws:states:eu-west-1:123456789012:execution:backup:nightly-20260620',
      verdict: {
        database: 'global_remit',
        backupId: 'global_remit-20260620T020000Z',
        status: 'warning',
        sizeBytes: 40 * 1024 * 1024,
        reasons: [
          'the dump is 40.0 MiB, 40 % of the median of the last 7 good backups (100.0 MiB); below the 50 % warning line',
        ],
      },
    });
    const note = bodies(everything).find((n) => n.Subject.includes('size anomaly'));
    expect(note?.Subject).toBe('[WARNING] Backup size anomaly: global_remit');
    expect(note?.Message).toContain(
      'Backup global_remit-20260620T020000Z of global_remit: the dump is 40.0 MiB, 40 % of the median of the last 7 good backups (100.0 MiB)',
    );
    expect(bodies(criticalOnly).map((n) => n.Subject)).not.toContain(
      '[WARNING] Backup size anomaly: global_remit',
    );
  });

  it('marks a blocked retention as a warning of its own kind, so filters route it', async () => {
    await handler({
      database: 'global_remit',
      error: { Error: 'RetentionBlockedError', Cause: 'the newest good backup is 49.0 h old' },
    });
    await retentionOnly.waitFor(1);
    expect(bodies(retentionOnly).map((n) => n.Subject)).toEqual([
      '[WARNING] Retention blocked: global_remit (RetentionBlockedError)',
    ]);
    expect(bodies(criticalOnly).map((n) => n.Subject)).not.toContain(
      '[WARNING] Retention blocked: global_remit (RetentionBlockedError)',
    );
    expect(bodies(everything).map((n) => n.Subject)).toContain(
      '[WARNING] Retention blocked: global_remit (RetentionBlockedError)',
    );
  });

  it('delivers a completed restore, as the restore machine sends it, as an info notice with its RTO', async () => {
    const count = everything.requests.length;
    // NotifyRestored's parameters, with the restore task's summary as the report.
    await handler({
      kind: 'restore-completed',
      database: 'global_remit',
      backupId: 'global_remit-20260601T020000Z',
      execution: 'arn:aws:states:eu-west-1:123456789012:execution:restore:ops-1',
      report: {
        backupId: 'global_remit-20260601T020000Z',
        database: 'global_remit',
        mode: 'restore',
        target: 'global_remit_june',
        passed: true,
        recoverySeconds: 754.2,
        timings: { fetchSeconds: 100, restoreSeconds: 600, checksSeconds: 54.2 },
        tableCount: 40,
        checks: [{ name: 'the restored database answers a query', kind: 'connect', passed: true }],
        warningCount: 0,
        warnings: [],
      },
    });
    await everything.waitFor(count + 1);
    const note = bodies(everything).find((n) => n.Subject.startsWith('[INFO] Restore completed'));
    expect(note?.Subject).toBe('[INFO] Restore completed: global_remit');
    expect(note?.Message).toContain('Recovery time (RTO): 754.2 s');
    expect(note?.Message).toContain('restored into global_remit_june');
    expect(bodies(criticalOnly).map((n) => n.Subject)).not.toContain(
      '[INFO] Restore completed: global_remit',
    );
  });

  it('delivers a sync the backup machine reports as leaving the stores apart, naming the store and cause', async () => {
    const count = everything.requests.length;
    // NotifySyncProblems' parameters, with the dump task's syncProblems.
    const result = await handler({
      kind: 'store-sync-failed',
      database: 'global_remit',
      backupId: 'global_remit-20260620T020000Z',
      execution: 'arn:aws:states:eu-west-1:123456789012:execution:backup:nightly-20260620',
      syncProblems: {
        count: 1,
        shown: [
          {
            role: 'secondary',
            url: 's3://global-remit-dr/backups',
            status: 'failed',
            subject: 'WAL segment 000000010000000000000007 of cluster main',
            cause: 'cannot store 000000010000000000000007 in the secondary store: AccessDenied',
          },
        ],
      },
    });
    expect(result).toMatchObject({ kind: 'store-sync-failed', severity: 'warning' });
    await everything.waitFor(count + 1);
    const note = bodies(everything).find((n) => n.Subject.startsWith('[WARNING] Stores not synced'));
    expect(note?.Message).toContain(
      'Not copied to the secondary store (s3://global-remit-dr/backups): WAL segment 000000010000000000000007 of cluster main: cannot store 000000010000000000000007 in the secondary store: AccessDenied',
    );
    expect(note?.Message).toContain('Kind:      store-sync-failed');
  });

  it('refuses a sync alert without its problems, naming what is missing', async () => {
    await expect(
      handler({
        kind: 'store-sync-failed',
        database: 'global_remit',
        backupId: 'global_remit-20260620T020000Z',
      }),
    ).rejects.toMatchObject({ name: 'InvalidEventError', message: expect.stringMatching(/syncProblems/) });
  });
});
