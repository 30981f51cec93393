import { describe, expect, it } from 'vitest';
import { createApplyRetentionHandler } from '../../../functions/apply-retention.js';
import { createCheckSizeHandler } from '../../../functions/check-size.js';
import { createCheckStalenessHandler } from '../../../functions/check-staleness.js';
import { createNotifyHandler } from '../../../functions/notify.js';
import { createSlackForwarderHandler } from '../../../functions/slack-forwarder.js';
import { InvalidEventError } from '../../../lib/domain/errors.js';
import { fixedClock } from '../../../lib/platform/clock.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { testConfig } from '../../support/manifests.js';
import { inboxAlerter, rejection } from '../../support/pipeline.js';

const alerter = inboxAlerter();
const ports = {
  store: new FileStore('/nonexistent/pgbp-store'),
  config: testConfig(),
  alerter,
  clock: fixedClock('2026-06-20T00:00:00Z'),
  logger: silentLogger,
};
const slack = {
  async post(): Promise<{ attempts: number }> {
    throw new Error('nothing may be posted for a malformed event');
  },
};

const handlers = {
  'check-size': createCheckSizeHandler(ports),
  'apply-retention': createApplyRetentionHandler(ports),
  'check-staleness': createCheckStalenessHandler(ports),
  notify: createNotifyHandler(ports),
  'slack-forwarder': createSlackForwarderHandler({ slack, logger: silentLogger }),
};

const cases: [keyof typeof handlers, unknown, RegExp][] = [
  ['check-size', {}, /^check-size: malformed event: database: .*; backupId: /],
  [
    'check-size',
    { database: 'app', backupId: 'app-2026' },
    /backupId: expected a backup id <database>-<yyyymmddThhmmssZ>/,
  ],
  [
    'check-size',
    { database: 'app', backupId: 'other-20260620T020000Z' },
    /backupId: the backup id belongs to another database/,
  ],
  [
    'apply-retention',
    { dryrun: true },
    /^apply-retention: malformed event: the event: Unrecognized key: "dryrun"/,
  ],
  ['apply-retention', { dryRun: 'yes' }, /dryRun: Invalid input: expected boolean/],
  ['apply-retention', { database: '../etc' }, /database: expected a database name/],
  [
    'check-staleness',
    'hourly',
    /^check-staleness: malformed event: the event: Invalid input: expected object/,
  ],
  [
    'notify',
    { database: 'app' },
    /^notify: malformed event: error: expected the caught error \{ Error, Cause \}, or a size verdict/,
  ],
  [
    'notify',
    { kind: 'size-anomaly', verdict: { status: 'warning', sizeBytes: 1, reasons: ['x'] } },
    /database: a size warning names its database; backupId: a size warning names its backup/,
  ],
  ['notify', { error: { Cause: 'boom' } }, /error\.Error: Invalid input: expected string/],
  ['notify', { kind: 'disk-full', error: { Error: 'X' } }, /kind: Invalid option/],
  [
    'notify',
    { kind: 'restore-completed', database: 'app' },
    /^notify: malformed event: report: a completed restore carries its report/,
  ],
  ['slack-forwarder', { Records: [] }, /Records: Too small/],
  [
    'slack-forwarder',
    { Records: [{ Sns: { Subject: 'x' } }] },
    /Records\[0\]\.Sns\.Message: Invalid input: expected string/,
  ],
];

describe('handlers given a malformed event', () => {
  it.each(cases)('%s rejects %j with InvalidEventError naming the field', async (name, event, message) => {
    const failure = await rejection(handlers[name](event));
    expect(failure).toBeInstanceOf(InvalidEventError);
    expect(failure.name).toBe('InvalidEventError');
    expect(failure.message).toMatch(message);
    expect(alerter.received).toEqual([]);
  });

  it('never echoes the values of a malformed event, which may carry secrets', async () => {
    const failure = await rejection(handlers.notify({ error: { Error: 42, Cause: 'password=hunter2' } }));
    expect(failure.message).toBe(
      'notify: malformed event: error.Error: Invalid input: expected string, received number',
    );
    expect(failure.message).not.toContain('hunter2');
  });
});
