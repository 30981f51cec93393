import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCheckWalHandler } from '../../../functions/check-wal.js';
import { fixedClock } from '../../../lib/platform/clock.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { emfSink } from '../../../lib/platform/metrics.js';
import { resolveConnection } from '../../../lib/postgres/pg-tools.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { runCli } from '../../support/cli.js';
import { testConfig } from '../../support/manifests.js';
import { inboxAlerter } from '../../support/pipeline.js';
import { createBucket } from '../../support/s3.js';
import { type ScratchCluster, scratchRoot, startCluster } from '../../support/scratch-cluster.js';
import {
  archiverStats,
  archiveStatus,
  pgbpCommand,
  switchAndWaitArchived,
  waitFor,
} from '../../support/wal.js';

const MINUTE = 60_000;

/**
 * The check-wal Lambda against a real cluster archiving with pgbp wal-push into S3 (moto): the
 * lag it publishes and the alerts it sends as the archive keeps up, idles, falls behind and fails.
 */
describe('check-wal against a cluster archiving to S3 (moto)', { timeout: 300_000 }, () => {
  let cluster: ScratchCluster;
  let bucket: string;
  let push: string;

  beforeAll(async () => {
    expect((await runCli(['--version'])).code).toBe(0);
    bucket = await createBucket();
    push = pgbpCommand(['wal-push', '%p', '--store', `s3://${bucket}/backups`]);
    cluster = await startCluster({
      root: scratchRoot(),
      walSegmentMb: 1,
      settings: { wal_level: 'replica', archive_mode: 'on', archive_command: push },
    });
    cluster.sql('create table t (id serial primary key, payload text)');
  });

  afterAll(() => cluster?.remove());

  function run(now: Date) {
    const alerter = inboxAlerter();
    const lines: Record<string, unknown>[] = [];
    const check = createCheckWalHandler({
      store: new S3Store(bucket, 'backups'),
      config: testConfig({ stage: 'dev', store: `s3://${bucket}/backups`, wal: { rpo: '5m' } }),
      alerter,
      clock: fixedClock(now),
      connection: async () => resolveConnection({ connection: {} } as never, cluster.env(), 'postgres'),
      metrics: emfSink((line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
      logger: silentLogger,
    });
    return { alerter, lines, result: check({}) };
  }

  async function reconfigure(command: string) {
    cluster.sql(`alter system set archive_command = '${command.replace(/'/g, "''")}'`);
    cluster.sql('select pg_reload_conf()');
    await waitFor('the reload', () => cluster.sql('show archive_command') === command);
  }

  function writeAndSwitch(times: number) {
    for (let i = 0; i < times; i += 1) {
      cluster.sql("insert into t (payload) select repeat('x', 100) from generate_series(1, 50)");
      cluster.sql('select pg_switch_wal()');
    }
  }

  it('publishes no lag and alerts nothing for an idle server, however long ago its last segment was archived', async () => {
    const closed = await switchAndWaitArchived(cluster);
    const { alerter, lines, result } = run(new Date(Date.now() + 6 * 60 * MINUTE));
    const report = await result;
    expect(report.newestArchived?.name).toBe(closed);
    // No lifecycle rule moves WAL to an archive class: those select by a tier tag WAL never has.
    const store = new S3Store(bucket, 'backups');
    for await (const o of store.list('backups/~cluster/main/wal/'))
      expect(await store.getTags(o.key), o.key).not.toHaveProperty('tier');
    expect(report.lag).toMatchObject({ segmentsBehind: 0, lagSeconds: 0, stale: false, failing: false });
    expect(alerter.received).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      Stage: 'dev',
      Cluster: 'main',
      WalArchiveLagSeconds: 0,
      WalArchiveSegmentsBehind: 0,
      _aws: {
        CloudWatchMetrics: [
          {
            Namespace: 'PgBackupPipeline',
            Dimensions: [['Stage', 'Cluster']],
            Metrics: [
              { Name: 'WalArchiveLagSeconds', Unit: 'Seconds' },
              { Name: 'WalArchiveSegmentsBehind', Unit: 'Count' },
            ],
          },
        ],
      },
    });
  });

  it('counts the segments the archive lacks, and alerts wal-archive-stale only once they wait longer than the RPO', async () => {
    // archive_command empty: PostgreSQL keeps its WAL and archives nothing, without a failure.
    await reconfigure('');
    writeAndSwitch(3);
    // What waits in pg_wal/archive_status, once a push begun before the reload has finished.
    let previous = '';
    const waiting = await waitFor('the archiver to settle', () => {
      const ready = archiveStatus(cluster, '.ready').join(',');
      const settled = ready === previous;
      previous = ready;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
      return settled ? ready.split(',').length : undefined;
    });
    expect(waiting).toBeGreaterThanOrEqual(2);
    const within = run(new Date(Date.now() + 2 * MINUTE));
    const early = await within.result;
    expect(early.lag.segmentsBehind).toBe(waiting);
    expect(early.lag.stale).toBe(false);
    expect(within.alerter.received).toEqual([]);

    const later = run(new Date(Date.now() + 10 * MINUTE));
    const late = await later.result;
    expect(late.lag.segmentsBehind).toBe(waiting);
    expect(late.lag.lagSeconds).toBeGreaterThan(300);
    expect(late.lag.stale).toBe(true);
    expect(later.alerter.received.map((a) => [a.kind, a.severity])).toEqual([
      ['wal-archive-stale', 'critical'],
    ]);
    expect(later.alerter.received[0]?.summary).toMatch(
      new RegExp(
        `^WAL archive stale for cluster main: the archive is ${waiting} segment\\(s\\) behind the server`,
      ),
    );
    expect(later.lines[0]).toMatchObject({ WalArchiveSegmentsBehind: waiting });
    expect(later.lines[0]?.WalArchiveLagSeconds).toBeGreaterThan(300);
  });

  it('alerts wal-archive-failing when archive_command fails, and is quiet again once it catches up', async () => {
    await reconfigure('false');
    await waitFor('a failed archive attempt', () => archiverStats(cluster).failed > 0);
    const failing = run(new Date(Date.now() + MINUTE));
    await failing.result;
    expect(failing.alerter.received.map((a) => a.kind)).toEqual(['wal-archive-failing']);
    expect(failing.alerter.received[0]?.summary).toContain('archive_command is failing');

    await reconfigure(push);
    await switchAndWaitArchived(cluster);
    const caughtUp = run(new Date(Date.now() + 60 * MINUTE));
    const report = await caughtUp.result;
    expect(report.lag).toMatchObject({ segmentsBehind: 0, stale: false, failing: false });
    expect(caughtUp.alerter.received).toEqual([]);
  });

  it('fails, publishing nothing, when the server cannot be reached: the alarm treats the missing metric as breaching', async () => {
    const alerter = inboxAlerter();
    const lines: string[] = [];
    const check = createCheckWalHandler({
      store: new S3Store(bucket, 'backups'),
      config: testConfig({ stage: 'dev', store: `s3://${bucket}/backups` }),
      alerter,
      clock: fixedClock(new Date()),
      connection: async () =>
        resolveConnection({ connection: {} } as never, { ...cluster.env(), PGPORT: '1' }, 'postgres'),
      metrics: emfSink((line) => lines.push(line)),
      logger: silentLogger,
    });
    await expect(check({})).rejects.toThrow(/ECONNREFUSED|connect/);
    expect(lines).toEqual([]);
    expect(alerter.received).toEqual([]);
  });
});
