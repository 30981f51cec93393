import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import {
  plainBaseBackup,
  recoveringCluster,
  startArchivingCluster,
} from '../../support/archiving-cluster.js';
import type { ScratchCluster } from '../../support/scratch-cluster.js';
import { waitFor } from '../../support/wal.js';

/**
 * The recovery point objective as PostgreSQL and pgbp keep it: with archive_timeout, every
 * transaction committed more than archive_timeout + 10 s before a crash is in the archive.
 * archive_timeout is 5 s here instead of production's 60 s, so the test runs in under a minute;
 * the bound scales with it. Times are this process's monotonic clock: when each commit was
 * acknowledged to the client, and when the stop was issued.
 */
const ARCHIVE_TIMEOUT_S = 5;
const BOUND_MS = (ARCHIVE_TIMEOUT_S + 10) * 1000;

const clusters: ScratchCluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.remove();
});

describe('RPO with archive_timeout', { timeout: 240_000 }, () => {
  it('recovers every transaction committed more than archive_timeout + 10 s before an immediate stop under traffic', async () => {
    const archiving = await startArchivingCluster({
      walSegmentMb: 1,
      settings: { archive_timeout: ARCHIVE_TIMEOUT_S },
    });
    const { source, root } = archiving;
    clusters.push(source);
    source.sql('create table commits (id int primary key, note text)');
    const backup = plainBaseBackup(source, join(root, 'backup'));

    // Traffic: one small transaction after another, each acknowledgement timed.
    const client = new pg.Client({
      host: '127.0.0.1',
      port: source.port,
      user: 'postgres',
      database: 'postgres',
    });
    await client.connect();
    client.on('error', () => {});
    const acknowledged = new Map<number, number>();
    let stopping = false;
    let failedBeforeStop: unknown;
    // It goes on until the server is gone.
    const traffic = (async () => {
      for (let id = 1; ; id++) {
        try {
          await client.query('insert into commits values ($1, md5($2))', [id, String(id)]);
        } catch (error) {
          if (!stopping) failedBeforeStop = error;
          return;
        }
        acknowledged.set(id, performance.now());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    // The stop comes a bound past the 101st acknowledged commit (so that at least 101 commits
    // must be in the archive, however fast this machine commits), plus a moment chosen at random
    // within one archive_timeout, so that the crash lands anywhere in a segment's cycle; printed so
    // that a failure can be replayed.
    await waitFor(
      '101 commits acknowledged',
      () => acknowledged.has(101) || failedBeforeStop !== undefined,
      120_000,
    );
    expect(failedBeforeStop).toBeUndefined();
    const at101 = acknowledged.get(101) ?? 0;
    const stopAfterMs = BOUND_MS + 1 + Math.floor(Math.random() * ARCHIVE_TIMEOUT_S * 1000);
    console.log(`stopping the server ${stopAfterMs} ms after the 101st commit`);
    await new Promise((r) => setTimeout(r, Math.max(0, at101 + stopAfterMs - performance.now())));
    const stoppedAt = performance.now();
    stopping = true;
    source.stop('immediate');
    await traffic;
    await client.end().catch(() => {});
    expect(failedBeforeStop).toBeUndefined();

    const mustHold = [...acknowledged].filter(([, at]) => at < stoppedAt - BOUND_MS).map(([id]) => id);
    expect(mustHold.length).toBeGreaterThan(100);

    const restored = await recoveringCluster(archiving, backup);
    clusters.push(restored);
    restored.start();
    await waitFor(
      'recovery to the end of the archive',
      () => restored.sql('select not pg_is_in_recovery()') === 't',
      120_000,
    );
    const held = new Set(restored.sql('select id from commits').split('\n').filter(Boolean).map(Number));
    const lost = mustHold.filter((id) => !held.has(id));
    expect(lost).toEqual([]);
    // Nothing recovered that was never acknowledged beyond the one in flight at the stop.
    expect(Math.max(...held)).toBeLessThanOrEqual(Math.max(...acknowledged.keys()) + 1);
  });
});
