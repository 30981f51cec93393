import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { parseWalFileName } from '../../../lib/domain/wal-names.js';
import { s3Client } from '../../../lib/platform/aws-clients/s3.js';
import { openStore } from '../../../lib/storage/open-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { decompress } from '../../../lib/wal/codec.js';
import {
  plainBaseBackup,
  recoveringCluster,
  startArchivingCluster,
} from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { freePort } from '../../support/ports.js';
import { createBucket } from '../../support/s3.js';
import { type ScratchCluster, startCluster } from '../../support/scratch-cluster.js';
import { archiverStats, switchAndWaitArchived, waitFor } from '../../support/wal.js';

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

/** A NAS and an S3 prefix that both hold the given segments, pushed through the config. */
async function bothStoresHolding(names: readonly string[]) {
  const bucket = await createBucket();
  const nas = join(work, `nas-${bucket}`);
  mkdirSync(nas);
  const config = await twoStoreConfig(mkdtempSync(join(work, 'config-')), nas, bucket);
  const data = dataDirWith(names);
  for (const name of names) {
    const pushed = await runCli(['wal-push', `pg_wal/${name}`, '--config', config], { cwd: data });
    expect(pushed.code, pushed.stderr).toBe(0);
  }
  const keys = await archived(await openStore(`file://${nas}`));
  return { bucket, nas, config, s3: `s3://${bucket}/wal`, nasKeyOf: (name: string) => keys.get(name) ?? '' };
}

/** wal-fetch as restore_command runs it, in a data directory of its own. */
async function fetchInto(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const data = mkdtempSync(join(work, 'recovering-'));
  mkdirSync(join(data, 'pg_wal'));
  const run = await runCli(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', ...args], { cwd: data, env });
  const dest = join(data, 'pg_wal', 'RECOVERYXLOG');
  return { ...run, written: existsSync(dest) ? readFileSync(dest) : undefined };
}

describe('wal-fetch with a primary and a secondary store', { timeout: 240_000 }, () => {
  it('reads the secondary copy when the primary one is damaged, and says which copy and why', async () => {
    const [first] = segments as [string];
    const stores = await bothStoresHolding([first]);
    const path = join(stores.nas, stores.nasKeyOf(first));
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0x55;
    writeFileSync(path, bytes);

    const run = await fetchInto(first, ['--config', stores.config]);

    expect(run.code, run.stderr).toBe(0);
    expect(run.written?.equals(readFileSync(join(work, 'wal', first)))).toBe(true);
    expect(run.stderr).toContain(`pgbp wal-fetch ${first}: read the secondary store's copy (${stores.s3})`);
    expect(run.stderr).toContain('the primary copy was damaged');
  });

  it('reads the secondary copy of a name the primary lacks; "not archived" only when both lack it', async () => {
    const [first, second, third] = segments as [string, string, string];
    const stores = await bothStoresHolding([first, second]);
    rmSync(join(stores.nas, stores.nasKeyOf(second)));

    const fromSecondary = await fetchInto(second, ['--config', stores.config]);
    expect(fromSecondary.code, fromSecondary.stderr).toBe(0);
    expect(fromSecondary.written?.equals(readFileSync(join(work, 'wal', second)))).toBe(true);
    expect(fromSecondary.stderr).toContain('the primary copy was missing');

    const nowhere = await fetchInto(third ?? '000000010000000000000099', ['--config', stores.config]);
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toBe('');
    expect(nowhere.written).toBeUndefined();
  });

  it('aborts (above 125), never "not archived", when the primary cannot be read and the secondary lacks the name', async () => {
    const [first, second] = segments as [string, string];
    const stores = await bothStoresHolding([first]);
    // The NAS is not mounted: its directory is gone.
    renameSync(stores.nas, `${stores.nas}.unmounted`);

    const run = await fetchInto(second, ['--config', stores.config]);

    expect(run.code).toBeGreaterThan(125);
    expect(run.written).toBeUndefined();
    expect(run.stderr).toContain(`pgbp wal-fetch ${second}`);
    expect(run.stderr).toContain(`primary store file://${stores.nas}`);
    expect(run.stderr).toContain(`secondary store ${stores.s3}: missing`);
    expect(run.stderr).toContain('--store URL');

    // With S3 down instead and the name missing from the NAS, the same.
    renameSync(`${stores.nas}.unmounted`, stores.nas);
    const down = { AWS_ENDPOINT_URL: `http://127.0.0.1:${await freePort()}`, AWS_MAX_ATTEMPTS: '1' };
    const s3Down = await fetchInto(second, ['--config', stores.config], down);
    expect(s3Down.code).toBeGreaterThan(125);
    expect(s3Down.stderr).toContain(`secondary store ${stores.s3}: unreadable`);
    // The NAS alone still answers for itself.
    const nasAlone = await fetchInto(second, ['--store', `file://${stores.nas}`], down);
    expect(nasAlone.code).toBe(1);
  });

  it("aborts (above 125) when every store's copy is damaged", async () => {
    const [first] = segments as [string];
    const stores = await bothStoresHolding([first]);
    const path = join(stores.nas, stores.nasKeyOf(first));
    writeFileSync(path, readFileSync(path).subarray(0, 100));
    // The S3 copy is replaced behind pgbp's back (pgbp itself never overwrites one).
    const [s3Key] = [...(await archived(await openStore(stores.s3))).values()];
    await s3Client().send(new DeleteObjectCommand({ Bucket: stores.bucket, Key: s3Key }));
    await s3Client().send(new PutObjectCommand({ Bucket: stores.bucket, Key: s3Key, Body: 'not zstd' }));

    const run = await fetchInto(first, ['--config', stores.config]);

    expect(run.code).toBeGreaterThan(125);
    expect(run.written).toBeUndefined();
    expect(run.stderr).toContain('CorruptWalError');
    expect(run.stderr).toContain('no good copy in any store');
  });

  it('recovers a base backup to the end when the NAS lacks one of the segments it needs', async () => {
    const bucket = await createBucket();
    const archiving = await startArchivingCluster({
      walSegmentMb: 1,
      config: (root, url) =>
        writeConfigFile(root, {
          stage: 'local',
          stores: { primary: { url }, secondary: { url: `s3://${bucket}/wal` } },
        }),
    });
    const { root, source } = archiving;
    clusters.push(source);
    source.sql('create table t (id int primary key, payload text)');
    const backup = plainBaseBackup(source, join(root, 'backup'));
    const afterBackup = await switchAndWaitArchived(source);
    source.sql('insert into t select g, repeat(md5(g::text), 4) from generate_series(1, 20000) g');
    await switchAndWaitArchived(source);
    const rows = source.sql("select count(*) || ':' || sum(hashtext(t::text)) from t");
    source.stop('fast');

    // The NAS lost a segment that replay needs (after the backup's start).
    const nas = await openStore(archiving.url);
    const onNas = await archived(nas);
    const lost = [...onNas.keys()].filter(
      (n) => parseWalFileName(n)?.kind === 'segment' && n > afterBackup,
    )[0];
    expect(lost).toBeDefined();
    rmSync(join(archiving.storeDir ?? '', onNas.get(lost ?? '') ?? ''));

    const restored = await recoveringCluster(archiving, backup);
    clusters.push(restored);
    restored.start();
    await waitFor('recovery to end', () => restored.sql('select not pg_is_in_recovery()') === 't', 120_000);
    expect(restored.sql("select count(*) || ':' || sum(hashtext(t::text)) from t")).toBe(rows);
    expect(readFileSync(restored.log, 'utf8')).toContain(`restored log file "${lost}" from archive`);
  });
});

describe('pgbp check with a primary and a secondary store', { timeout: 300_000 }, () => {
  it('names the store that lags behind the server once pushes to it failed', async () => {
    const bucket = await createBucket();
    const s3 = `s3://${bucket}/wal`;
    const archiving = await startArchivingCluster({
      walSegmentMb: 1,
      settings: { archive_timeout: 60 },
      config: (root, url) =>
        writeConfigFile(root, { stage: 'local', stores: { primary: { url }, secondary: { url: s3 } } }),
    });
    const { source, archiveArgs } = archiving;
    clusters.push(source);
    await switchAndWaitArchived(source);
    const check = (...extra: string[]) =>
      runCli(['check', ...archiveArgs, '--timeout', '120s', ...extra], { env: source.env() });
    const problems = (stdout: string) =>
      stdout
        .split('\n')
        .filter((l) => l.startsWith('PROBLEM'))
        .map((l) => l.slice('PROBLEM '.length).split(':')[0]);

    const good = await check();
    expect(good.code, good.stdout + good.stderr).toBe(0);
    expect(good.stdout).toContain(`ok      store primary: primary store ${archiving.url}: newest segment`);
    expect(good.stdout).toContain(`ok      store secondary: secondary store ${s3}: newest segment`);

    // S3 down for the archiver: its pushes succeed on the NAS alone (degraded).
    const push = source.sql('show archive_command');
    const dead = `AWS_ENDPOINT_URL=http://127.0.0.1:${await freePort()} AWS_MAX_ATTEMPTS=1 ${push}`;
    source.sql(`alter system set archive_command = '${dead.replace(/'/g, "''")}'`);
    source.sql('select pg_reload_conf()');
    await waitFor('the reload', () => source.sql('show archive_command') === dead);
    for (let i = 0; i < 2; i++) {
      source.sql(`create table degraded_${i} as select generate_series(1, 1000) g`);
      await switchAndWaitArchived(source);
    }
    expect(archiverStats(source).failed).toBe(0);
    expect(readFileSync(source.log, 'utf8')).toContain(`is not in the secondary store ${s3}`);

    source.sql(`alter system set archive_command = '${push.replace(/'/g, "''")}'`);
    source.sql('select pg_reload_conf()');
    await waitFor('the reload', () => source.sql('show archive_command') === push);
    const behind = await check('--no-round-trip');
    expect(behind.code).toBe(1);
    expect(problems(behind.stdout)).toEqual(['store secondary']);
    expect(behind.stdout).toMatch(
      /PROBLEM store secondary: secondary store s3:\/\/[^ ]+: newest segment \w+, 2 segment\(s\) behind/,
    );

    // Once pushes reach S3 again its newest is current, but it lacks what it missed. (WAL written
    // first: a switch with nothing written since the last one switches nothing.)
    source.sql('create table after_s3 (x int)');
    const after = await check();
    expect(problems(after.stdout)).toEqual(['store secondary']);
    expect(after.stdout).toMatch(/PROBLEM store secondary: .*missing from it: \w+\.\.\w+/);
  });
});
