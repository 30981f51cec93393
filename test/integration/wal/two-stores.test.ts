import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { parseWalFileName } from '../../../lib/domain/wal-names.js';
import { openStore } from '../../../lib/storage/open-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { decompress } from '../../../lib/wal/codec.js';
import { startArchivingCluster } from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { freePort } from '../../support/ports.js';
import { createBucket } from '../../support/s3.js';
import { type ScratchCluster, startCluster } from '../../support/scratch-cluster.js';
import { archiverStats, switchAndWaitArchived } from '../../support/wal.js';

const clusters: ScratchCluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.remove();
});

let work: string;
/** Real segments of one cluster, copied out of its pg_wal. */
let segments: string[];

beforeAll(async () => {
  expect((await runCli(['--version'])).code).toBe(0);
  work = mkdtempSync(join(tmpdir(), 'pgbp-wal-two-'));
  const cluster = await startCluster({ walSegmentMb: 1, settings: { wal_level: 'replica' } });
  try {
    cluster.sql('create table t as select g, md5(g::text) m from generate_series(1, 20000) g');
    cluster.sql('select pg_switch_wal()');
    cluster.sql('insert into t select g, md5(g::text) m from generate_series(1, 20000) g');
    cluster.sql('select pg_switch_wal()');
    const current = cluster.sql('select pg_walfile_name(pg_current_wal_lsn())');
    const pgWal = join(cluster.data, 'pg_wal');
    segments = readdirSync(pgWal)
      .filter((n) => /^[0-9A-F]{24}$/.test(n) && n < current)
      .sort();
    mkdirSync(join(work, 'wal'));
    for (const n of segments) copyFileSync(join(pgWal, n), join(work, 'wal', n));
  } finally {
    cluster.remove();
  }
  expect(segments.length).toBeGreaterThan(1);
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** The archived copies in one store, by file name. */
async function archived(store: BackupStore): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const o of store.list(store.prefix ? `${store.prefix}/` : '')) {
    const parsed = parseWalObjectKey(o.key);
    if (parsed) found.set(parsed.name, o.key);
  }
  return found;
}

/** A data directory of its own for a push run by hand: pg_wal with copies of the segments. */
function dataDirWith(names: readonly string[]): string {
  const data = mkdtempSync(join(work, 'data-'));
  mkdirSync(join(data, 'pg_wal', 'archive_status'), { recursive: true });
  for (const n of names) copyFileSync(join(work, 'wal', n), join(data, 'pg_wal', n));
  return data;
}

async function twoStoreConfig(dir: string, nas: string, bucket: string): Promise<string> {
  return writeConfigFile(dir, {
    stage: 'local',
    stores: { primary: { url: `file://${nas}` }, secondary: { url: `s3://${bucket}/wal` } },
  });
}

describe('wal-push with a primary and a secondary store', { timeout: 240_000 }, () => {
  it('archives every file PostgreSQL hands over to the NAS and to S3, each equal to its own copy', async () => {
    const bucket = await createBucket();
    const archiving = await startArchivingCluster({
      walSegmentMb: 1,
      config: (root, url) =>
        writeConfigFile(root, {
          stage: 'local',
          stores: { primary: { url }, secondary: { url: `s3://${bucket}/wal` } },
        }),
    });
    const { source } = archiving;
    clusters.push(source);
    source.sql('create table t (id int primary key, payload text)');
    source.sql('insert into t select g, repeat(md5(g::text), 4) from generate_series(1, 20000) g');
    await switchAndWaitArchived(source);

    const nas = await openStore(archiving.url);
    const s3 = await openStore(`s3://${bucket}/wal`);
    const [onNas, inS3] = await Promise.all([archived(nas), archived(s3)]);
    const done = readdirSync(join(source.data, 'pg_wal', 'archive_status'))
      .filter((n) => n.endsWith('.done'))
      .map((n) => n.slice(0, -'.done'.length))
      .filter((n) => parseWalFileName(n)?.kind === 'segment' && existsSync(join(source.data, 'pg_wal', n)));
    expect(done.length).toBeGreaterThan(1);
    for (const name of done) {
      const original = readFileSync(join(source.data, 'pg_wal', name));
      for (const [store, keys] of [
        [nas, onNas],
        [s3, inS3],
      ] as const) {
        const key = keys.get(name);
        expect(key, `${name} in ${store.url}`).toBeDefined();
        expect((await decompress(await store.getBytes(key ?? ''), process.env)).equals(original)).toBe(true);
      }
    }
    expect(archiverStats(source).failed).toBe(0);
  });

  it('exits 0 with S3 down, the segment on the NAS alone, saying so on every push and alerting once', async () => {
    const bucket = await createBucket();
    const nas = join(work, `nas-${bucket}`);
    mkdirSync(nas);
    const config = await twoStoreConfig(mkdtempSync(join(work, 'config-')), nas, bucket);
    const [first, second] = segments as [string, string];
    const data = dataDirWith([first, second]);
    // S3 as the push sees it when its endpoint answers nothing.
    const down = { AWS_ENDPOINT_URL: `http://127.0.0.1:${await freePort()}`, AWS_MAX_ATTEMPTS: '1' };

    const one = await runCli(['wal-push', `pg_wal/${first}`, '--config', config], { cwd: data, env: down });
    const two = await runCli(['wal-push', `pg_wal/${second}`, '--config', config], { cwd: data, env: down });

    for (const [run, name] of [
      [one, first],
      [two, second],
    ] as const) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toContain(`degraded: ${name} is not in the secondary store s3://${bucket}/wal`);
    }
    // One alert for the store, not one per segment.
    expect(one.stderr).toContain('WAL archive degraded');
    expect(one.stderr).toContain(`secondary store s3://${bucket}/wal`);
    expect(two.stderr).not.toContain('WAL archive degraded');

    const [onNas, inS3] = await Promise.all([
      archived(await openStore(`file://${nas}`)),
      archived(await openStore(`s3://${bucket}/wal`)),
    ]);
    expect([...onNas.keys()].sort()).toEqual([first, second]);
    expect(inS3.size).toBe(0);
  });

  it('refuses a segment that S3 holds with other contents, although the NAS took it', async () => {
    const bucket = await createBucket();
    const nas = join(work, `nas-${bucket}`);
    mkdirSync(nas);
    const config = await twoStoreConfig(mkdtempSync(join(work, 'config-')), nas, bucket);
    const [first, second] = segments as [string, string];
    // S3 got another file under the first one's name (another push under that name).
    const other = dataDirWith([second]);
    copyFileSync(join(work, 'wal', second), join(other, 'pg_wal', first));
    const s3Only = await runCli(['wal-push', `pg_wal/${first}`, '--store', `s3://${bucket}/wal`], {
      cwd: other,
    });
    expect(s3Only.code, s3Only.stderr).toBe(0);

    const data = dataDirWith([first]);
    const run = await runCli(['wal-push', `pg_wal/${first}`, '--config', config], { cwd: data });

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('WalConflictError');
    expect(run.stderr).toContain(`s3://${bucket}/wal`);
    expect(run.stderr).toContain('WAL archive conflict');
  });
});
