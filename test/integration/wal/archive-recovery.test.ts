import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { parseWalFileName } from '../../../lib/domain/wal-names.js';
import { openStore } from '../../../lib/storage/open-store.js';
import { decompress } from '../../../lib/wal/codec.js';
import {
  plainBaseBackup,
  recoveringCluster,
  startArchivingCluster,
} from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { createBucket } from '../../support/s3.js';
import type { ScratchCluster } from '../../support/scratch-cluster.js';
import { archiverStats, switchAndWaitArchived, waitFor } from '../../support/wal.js';

const clusters: ScratchCluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.remove();
});

beforeAll(async () => {
  // PostgreSQL runs pgbp as the postgres OS user, which must find the CLI built.
  expect((await runCli(['--version'])).code).toBe(0);
});

const ROWS = "select count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) from t";

async function archiveAndRecover(storeUrl?: string) {
  const archiving = await startArchivingCluster({ walSegmentMb: 1, ...(storeUrl ? { url: storeUrl } : {}) });
  const { root, source, url } = archiving;
  clusters.push(source);
  source.sql('create table t (id int primary key, payload text)');
  const backup = plainBaseBackup(source, join(root, 'backup'));
  source.sql('insert into t select g, repeat(md5(g::text), 4) from generate_series(1, 20000) g');
  source.sql("update t set payload = 'changed' where id % 7 = 0");
  const last = await switchAndWaitArchived(source);
  const rows = source.sql(ROWS);

  // Every archived segment still in pg_wal equals PostgreSQL's own copy, after decompression.
  const store = await openStore(url);
  const stored = new Map<string, string>();
  for await (const o of store.list(store.prefix ? `${store.prefix}/` : '')) {
    const parsed = parseWalObjectKey(o.key);
    if (parsed) stored.set(parsed.name, o.key);
  }
  const done = readdirSync(join(source.data, 'pg_wal', 'archive_status'))
    .filter((n) => n.endsWith('.done'))
    .map((n) => n.slice(0, -'.done'.length));
  const segments = done.filter(
    (n) => parseWalFileName(n)?.kind === 'segment' && existsSync(join(source.data, 'pg_wal', n)),
  );
  expect(segments.length).toBeGreaterThan(3);
  expect(done.some((n) => n.endsWith('.backup'))).toBe(true);
  for (const name of done) {
    const key = stored.get(name);
    expect(key, name).toBeDefined();
    if (!existsSync(join(source.data, 'pg_wal', name))) continue;
    const original = readFileSync(join(source.data, 'pg_wal', name));
    expect((await decompress(await store.getBytes(key ?? ''), process.env)).equals(original), name).toBe(
      true,
    );
  }
  expect(archiverStats(source).failed).toBe(0);

  // A copy of the base backup recovers from the archive with pgbp wal-fetch, to its end.
  source.stop('fast');
  const restored = await recoveringCluster(archiving, backup);
  clusters.push(restored);
  restored.start();
  await waitFor('recovery to end', () => restored.sql('select not pg_is_in_recovery()') === 't', 120_000);
  expect(restored.sql(ROWS)).toBe(rows);
  const log = readFileSync(restored.log, 'utf8');
  expect(log).toContain(`restored log file "${last}" from archive`);
}

describe('continuous WAL archiving with pgbp wal-push and wal-fetch', { timeout: 240_000 }, () => {
  it('archives every file to a directory as PostgreSQL wrote it, and a base backup recovers from it to the end', async () => {
    await archiveAndRecover();
  });

  it('does the same with S3', async () => {
    const bucket = await createBucket();
    await archiveAndRecover(`s3://${bucket}/nightly`);
  });
});
