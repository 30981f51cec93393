import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeCause } from '../../../lib/domain/alert-causes.js';
import {
  alertSubject,
  alertText,
  slackMessage,
  slackViewOfNotification,
} from '../../../lib/domain/alert-texts.js';
import {
  ALERT_KINDS,
  type Alert,
  degradedAlert,
  failureAlert,
  kindForError,
  restoreCompletedAlert,
  SEVERITIES,
  staleAlert,
  storeSyncAlert,
} from '../../../lib/domain/alerts.js';
import { errorNames } from '../../../lib/domain/errors.js';

const NOW = new Date('2026-06-20T02:30:00Z');
const SLACK_URL = 'https://hooks.slack.com/services/T000/B000/XXXXSECRET';

describe('describeCause', () => {
  it('reads the message of a Lambda error out of its JSON cause', () => {
    const cause = JSON.stringify({
      errorType: 'SizeOutOfRangeError',
      errorMessage:
        'backup db-20260620T020000Z of db: the dump is 0 B, at or below 2.0 KiB: empty or near-empty',
      trace: ['SizeOutOfRangeError: …', '    at check (/var/task/index.mjs:1:1)'],
    });
    expect(describeCause(cause)).toBe(
      'backup db-20260620T020000Z of db: the dump is 0 B, at or below 2.0 KiB: empty or near-empty',
    );
  });

  it('summarises a stopped ECS task by its reason and exit codes, leaving its environment out', () => {
    const cause = JSON.stringify({
      StoppedReason: 'Essential container in task exited',
      Containers: [{ Name: 'dump', ExitCode: 1, Reason: 'OutOfMemoryError' }],
      Overrides: { ContainerOverrides: [{ Environment: [{ Name: 'PGPASSWORD', Value: 'hunter2' }] }] },
    });
    const text = describeCause(cause);
    expect(text).toBe(
      'task stopped: Essential container in task exited; container dump exited with 1 (OutOfMemoryError)',
    );
  });

  it('removes passwords, connection URLs and Slack webhooks from any cause', () => {
    const causes = [
      'connection to postgres://backup:hunter2@db.internal:5432/app failed',
      'psql: error: host=db password=hunter2 sslmode=require',
      'PGPASSWORD=hunter2 pg_dump failed',
      JSON.stringify({ message: 'boom', config: { password: 'hunter2', slackWebhook: SLACK_URL } }),
      JSON.stringify({ env: [{ name: 'PGPASSWORD', value: 'hunter2' }] }),
      `posting to ${SLACK_URL} failed`,
      'not json but {"password": "hunter2"} inside',
    ];
    for (const cause of causes) {
      const text = describeCause(cause);
      expect(text).not.toContain('hunter2');
      expect(text).not.toContain('XXXXSECRET');
    }
  });

  it('bounds a huge cause to 2,000 characters', () => {
    expect(describeCause('x'.repeat(50_000))).toHaveLength(2000);
  });
});

describe('failureAlert', () => {
  it('names the kind after the typed error unless the state machine says otherwise', () => {
    expect(kindForError('SizeOutOfRangeError')).toBe('size-anomaly');
    expect(kindForError('RestoreCheckFailedError')).toBe('restore-check-failed');
    expect(kindForError('DumpFailedError')).toBe('backup-failed');
    expect(kindForError('States.Timeout')).toBe('backup-failed');
    for (const name of errorNames) expect(ALERT_KINDS).toContain(kindForError(name));
    const alert = failureAlert({ kind: 'restore-check-failed', error: { Error: 'States.TaskFailed' } }, NOW);
    expect(alert.kind).toBe('restore-check-failed');
  });

  it('writes a readable body: what, where, the error and cause without secrets, and what to do next', () => {
    const alert = failureAlert(
      {
        database: 'global_remit',
        backupId: 'global_remit-20260620T020000Z',
        execution: 'arn:aws:states:eu-west-1:123:execution:backup:abc',
        error: {
          Error: 'DumpFailedError',
          Cause: JSON.stringify({
            errorMessage: 'pg_dump: connection to postgres://backup:hunter2@db/app refused',
          }),
        },
      },
      NOW,
    );
    const text = alertText(alert);
    expect(text).toContain('[CRITICAL] Backup failed: global_remit (DumpFailedError)');
    expect(text).toContain('Backup:    global_remit-20260620T020000Z');
    expect(text).toContain('Execution: arn:aws:states:eu-west-1:123:execution:backup:abc');
    expect(text).toContain('Cause: pg_dump: connection to postgres://backup:***@db/app refused');
    expect(text).toContain('- Run the backup by hand to see the error: pgbp dump --database global_remit');
    expect(text).not.toContain('hunter2');
  });
});

describe('degradedAlert', () => {
  it('warns that a backup is in one store only, naming the store that failed and the cause', () => {
    const alert = degradedAlert(
      'global_remit',
      'global_remit-20260620T020000Z',
      [
        {
          role: 'primary',
          url: 'file:///nas/pg-backups',
          status: 'failed',
          error: { name: 'Error', message: 'ENOSPC: no space left on device, write' },
        },
        { role: 'secondary', url: 's3://global-remit-backups/backups', status: 'stored' },
      ],
      NOW,
    );
    expect(alert).toMatchObject({ kind: 'backup-degraded', severity: 'warning', database: 'global_remit' });
    expect(alertSubject(alert)).toBe('[WARNING] Backup degraded (one store lacks it): global_remit (Error)');
    const text = alertText(alert);
    expect(text).toContain(
      'Backup global_remit-20260620T020000Z of global_remit is stored in the secondary store (s3://global-remit-backups/backups) only.',
    );
    expect(text).toContain(
      'Not stored in the primary store (file:///nas/pg-backups): ENOSPC: no space left on device, write',
    );
    expect(text).toContain('pgbp sync --database global_remit');
  });
});

describe('storeSyncAlert', () => {
  it('warns that the stores drift apart after a good backup, naming each store left lacking and why', () => {
    const alert = storeSyncAlert(
      'global_remit',
      'global_remit-20260620T020000Z',
      {
        count: 12,
        shown: [
          {
            role: 'secondary',
            url: 's3://global-remit-backups/backups',
            status: 'failed',
            subject: 'WAL segment 000000010000000000000003 of cluster main',
            cause: 'cannot store 000000010000000000000003 in the secondary store: AccessDenied',
          },
          {
            role: 'primary',
            url: 'file:///nas/pg-backups',
            status: 'conflict',
            subject: 'WAL segment 000000010000000000000004 of cluster main',
            cause:
              'the secondary store holds it with sha256 aa, the primary store with bb: neither is replaced',
          },
        ],
      },
      NOW,
      'arn:aws:states:eu-west-1:123456789012:execution:backup:nightly',
    );
    expect(alert).toMatchObject({
      kind: 'store-sync-failed',
      severity: 'warning',
      database: 'global_remit',
      backupId: 'global_remit-20260620T020000Z',
    });
    expect(alertSubject(alert)).toBe(
      '[WARNING] Stores not synced (one store lacks what the other holds): global_remit',
    );
    const text = alertText(alert);
    expect(text).toContain(
      'Not copied to the secondary store (s3://global-remit-backups/backups): WAL segment 000000010000000000000003 of cluster main: cannot store 000000010000000000000003 in the secondary store: AccessDenied',
    );
    expect(text).toContain(
      'CONFLICT in the primary store (file:///nas/pg-backups): WAL segment 000000010000000000000004 of cluster main',
    );
    expect(text).toContain('… and 10 more (pgbp sync names each)');
    expect(text).toContain('pgbp sync');
  });
});

describe('restoreCompletedAlert', () => {
  it('tells of a completed restore as information, with its recovery time and checks', () => {
    const alert = restoreCompletedAlert(
      'global_remit',
      {
        backupId: 'global_remit-20260601T020000Z',
        target: 'global_remit_june',
        recoverySeconds: 754.25,
        checks: [
          { name: 'connect', passed: true },
          { name: 'tables', passed: true },
        ],
      },
      NOW,
      'arn:aws:states:eu-west-1:123:execution:restore:ops-1',
    );
    expect(alert).toMatchObject({ kind: 'restore-completed', severity: 'info', database: 'global_remit' });
    expect(alertSubject(alert)).toBe('[INFO] Restore completed: global_remit');
    const text = alertText(alert);
    expect(text).toContain(
      'Backup global_remit-20260601T020000Z of global_remit was restored into global_remit_june.',
    );
    expect(text).toContain('Recovery time (RTO): 754.3 s, from the request to the checks done.');
    expect(text).toContain('Checks: 2 of 2 passed.');
    expect(text).toContain('Execution: arn:aws:states:eu-west-1:123:execution:restore:ops-1');
  });

  it('calls a refused restore request a failed restore, not a failed restore check', () => {
    expect(kindForError('InvalidRestoreRequestError')).toBe('restore-failed');
    expect(
      failureAlert({ kind: 'restore-failed', error: { Error: 'ArchivedBackupError' } }, NOW).severity,
    ).toBe('critical');
  });
});

const alertArb: fc.Arbitrary<Alert> = fc.record({
  kind: fc.constantFrom(...ALERT_KINDS),
  severity: fc.constantFrom(...SEVERITIES),
  database: fc.string({ maxLength: 200 }),
  error: fc.record({
    name: fc.string({ unit: 'binary', maxLength: 300 }),
    cause: fc.string({ maxLength: 5000 }),
  }),
  summary: fc.string({ maxLength: 5000 }),
  nextSteps: fc.array(fc.string()),
  at: fc.constant(NOW.toISOString()),
});

describe('alertSubject', () => {
  it('fits SNS: one line of printable ASCII, under 100 characters, whatever the alert', () => {
    fc.assert(
      fc.property(alertArb, (alert) => {
        const subject = alertSubject(alert);
        expect(subject.length).toBeLessThan(100);
        expect(subject).toMatch(/^\[[A-Z]+\] [\x20-\x7e]*$/);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads as severity, what, and which database', () => {
    const alert = staleAlert(
      {
        database: 'global_remit',
        newestId: 'global_remit-20260618T020000Z',
        newestCreatedAt: '2026-06-18T02:00:00.000Z',
        ageHours: 48.5,
        staleAfterHours: 24,
        stale: true,
      },
      NOW,
    );
    expect(alertSubject(alert)).toBe('[CRITICAL] Backup stale: global_remit');
    expect(alertText(alert)).toContain(
      'The newest good backup of global_remit is global_remit-20260618T020000Z, taken 48.5 h ago',
    );
  });
});

describe('slackMessage', () => {
  it('stays within Block Kit limits whatever the alert', () => {
    fc.assert(
      fc.property(alertArb, fc.string({ maxLength: 400 }), (alert, title) => {
        const message = slackMessage({
          title,
          severity: alert.severity,
          kind: alert.kind,
          database: alert.database,
          body: alertText(alert),
        });
        const [header, ...rest] = message.blocks as {
          type: string;
          text?: { text: string };
          fields?: { text: string }[];
        }[];
        expect(header?.type).toBe('header');
        expect(header?.text?.text.length).toBeLessThanOrEqual(150);
        for (const block of rest) {
          if (block.text) expect(block.text.text.length).toBeLessThanOrEqual(3000);
          for (const f of block.fields ?? []) expect(f.text.length).toBeLessThanOrEqual(2000);
        }
        expect(message.blocks.length).toBeLessThanOrEqual(50);
      }),
      { numRuns: 1000 },
    );
  });

  it('shows a notification’s subject as the header and its attributes as fields, without repeating the title', () => {
    const view = slackViewOfNotification({
      subject: '[WARNING] Retention blocked: db',
      message: '[WARNING] Retention blocked: db\n\nSeverity:  warning\nWhat happened: <stale>',
      attributes: {
        severity: { Value: 'warning' },
        kind: { Value: 'retention-blocked' },
        database: { Value: 'db' },
      },
      timestamp: '2026-06-20T02:30:00.000Z',
    });
    const message = slackMessage(view);
    expect(message.text).toBe('[WARNING] Retention blocked: db');
    expect(JSON.stringify(message.blocks[0])).toContain(':warning: [WARNING] Retention blocked: db');
    expect(message.blocks[1]).toEqual({
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: '*Severity*\nwarning' },
        { type: 'mrkdwn', text: '*Kind*\nretention-blocked' },
        { type: 'mrkdwn', text: '*Database*\ndb' },
      ],
    });
    expect(message.blocks[2]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: '```Severity:  warning\nWhat happened: &lt;stale&gt;```' },
    });
  });
});
