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

    // A moment chosen at random past the first bound, printed so that a failure can be replayed.
    const stopAfterMs = BOUND_MS + 5_000 + Math.floor(Math.random() * 10_000);
    console.log(`stopping the server ${stopAfterMs} ms into the traffic`);
    await new Promise((r) => setTimeout(r, stopAfterMs));
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
