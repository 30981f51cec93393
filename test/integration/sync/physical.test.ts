import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as pgbp } from '../../../cli/main.js';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import type { SyncedPhysical } from '../../../lib/sync/physical-report.js';
import { main as dumpTask } from '../../../tasks/dump.js';
import { runCli } from '../../support/cli.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { createBucket, listKeys } from '../../support/s3.js';
import { type ScratchCluster, startCluster } from '../../support/scratch-cluster.js';
import { sink } from '../../support/sink.js';
import { alertInbox, type ExecutionJson } from '../pipeline/harness.js';

/** Real WAL segments of one cluster, copied out of its pg_wal. */
let work: string;
let segments: string[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pgbp-sync-physical-'));
  const cluster: ScratchCluster = await startCluster({ walSegmentMb: 1, settings: { wal_level: 'replica' } });
  try {
    cluster.sql('create table t as select g, md5(g::text) m from generate_series(1, 20000) g');
    cluster.sql('select pg_switch_wal()');
    cluster.sql('insert into t select g, md5(g::text) m from generate_series(1, 20000) g');
    cluster.sql('select pg_switch_wal()');
    const current = cluster.sql('select pg_walfile_name(pg_current_wal_lsn())');
    const pgWal = join(cluster.data, 'pg_wal');
    segments = readdirSync(pgWal)
      .filter((n) => /^[0-9A-F]{24}$/.test(n) && n < current)
      .sort()
      .slice(-4);
    for (const n of segments) copyFileSync(join(pgWal, n), join(work, n));
  } finally {
    cluster.remove();
  }
  expect(segments.length).toBeGreaterThanOrEqual(3);
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** A copy of a WAL file under its own name in a folder of its own, as pg_wal holds it. */
function asPgWal(bytes: Buffer, name: string): string {
  const dir = mkdtempSync(join(work, 'pg_wal-'));
  writeFileSync(join(dir, name), bytes);
  return join(dir, name);
}

/**
 * Stores a WAL file with pgbp wal-push, run in this process: what the stores hold before a sync is
 * where these tests start, not what they test, and a Node of its own per file cost ~0.4 s each.
 */
async function push(name: string, url: string, bytes = readFileSync(join(work, name))): Promise<void> {
  const path = asPgWal(bytes, name);
  const stderr = sink();
  const code = await pgbp(['wal-push', path, '--store', url], {
    env: process.env,
    cwd: dirname(path),
    stdout: sink().stream,
    stderr: stderr.stream,
  });
  expect(code, stderr.text()).toBe(0);
}

/** A stage with the NAS (a directory) as the primary store and S3 on moto as the secondary, and `more` config lines. */
async function twoStores(
  more: readonly string[] = [],
): Promise<{ nas: string; s3: string; config: string; bucket: string }> {
  const bucket = await createBucket();
  const nas = mkdtempSync(join(work, 'nas-'));
  const config = join(nas, '..', `${bucket}.yml`);
  writeFileSync(
    config,
    [
      'stage: local',
      'stores:',
      `  primary: { url: "file://${nas}" }`,
      `  secondary: { url: "s3://${bucket}/backups" }`,
      ...more,
    ].join('\n'),
  );
  return { nas, s3: `s3://${bucket}/backups`, config, bucket };
}

async function syncJson(
  config: string,
): Promise<{ code: number | null; lines: SyncedPhysical[]; stdout: string }> {
  const run = await runCli(['sync', '--config', config, '--json']);
  expect(run.stderr).toBe('');
  const lines = run.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SyncedPhysical);
  return { code: run.code, lines, stdout: run.stdout };
}

async function fetched(
  name: string,
  url: string,
): Promise<{ code: number | null; bytes?: Buffer; stderr: string }> {
  // Run where PostgreSQL runs restore_command, in a data directory (the prefetcher keeps its
  // spool under its pg_wal).
  const dataDir = mkdtempSync(join(work, 'fetch-'));
  const dest = join(dataDir, 'RECOVERYXLOG');
  const run = await runCli(['wal-fetch', name, dest, '--store', url], { cwd: dataDir });
  return run.code === 0
    ? { code: 0, bytes: readFileSync(dest), stderr: run.stderr }
    : { code: run.code, stderr: run.stderr };
}

/** The stored object of one WAL file in a directory store. */
async function objectOf(dir: string, name: string): Promise<string> {
  for await (const o of new FileStore(dir).list('')) {
    if (parseWalObjectKey(o.key)?.name === name) return join(dir, o.key);
  }
  throw new Error(`${name} is not in ${dir}`);
}

describe('pgbp sync of the physical archive', () => {
  it('copies the WAL only the NAS holds to S3, which then serves PostgreSQL’s own bytes', async () => {
    const { nas, s3, config } = await twoStores();
    for (const name of segments) await push(name, `file://${nas}`);
    const history = '1\t0/3000000\tno recovery target specified\n';
    await push('00000002.history', `file://${nas}`, Buffer.from(history));
    expect((await fetched(segments[0] as string, s3)).code).toBeGreaterThan(125);

    const sync = await syncJson(config);
    expect(sync.code).toBe(0);
    expect(sync.lines.map((l) => [l.cluster, l.kind, l.name, l.from, l.to, l.status]).sort()).toEqual(
      [
        ...segments.map((n) => ['main', 'segment', n, 'primary', 'secondary', 'copied']),
        ['main', 'history', '00000002.history', 'primary', 'secondary', 'copied'],
      ].sort(),
    );
    for (const name of segments) {
      const got = await fetched(name, s3);
      expect(got.code, got.stderr).toBe(0);
      expect(got.bytes?.equals(readFileSync(join(work, name)))).toBe(true);
    }
    expect((await fetched('00000002.history', s3)).bytes?.toString()).toBe(history);
    // What S3 lacks is now "not archived" (exit 1), as on the NAS: S3 holds the archive's identity.
    expect((await fetched('000000010000000000000FFF', s3)).code).toBe(1);

    const again = await runCli(['sync', '--config', config]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe('the stores hold the same backups and physical archive');
  });

  it('copies the other way what S3 alone holds, and says so per kind', async () => {
    const { nas, s3, config } = await twoStores();
    const [first, ...rest] = segments as [string, ...string[]];
    await push(first, `file://${nas}`);
    await push(first, s3);
    for (const name of rest) await push(name, s3);

    const sync = await runCli(['sync', '--config', config]);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sync.stdout).toMatch(
      new RegExp(
        `^main secondary → primary: ${rest.length} WAL segment\\(s\\) copied \\(.+, sha256 verified\\)$`,
        'm',
      ),
    );
    for (const name of rest) {
      const got = await fetched(name, `file://${nas}`);
      expect(got.code, got.stderr).toBe(0);
      expect(got.bytes?.equals(readFileSync(join(work, name)))).toBe(true);
    }
  });

  it('does not copy a damaged WAL file, and reports it', async () => {
    const { nas, s3, config, bucket } = await twoStores();
    const [damaged, good] = segments as [string, string];
    await push(damaged, `file://${nas}`);
    await push(good, `file://${nas}`);
    // One flipped byte inside the compressed object, as a failing disk leaves it.
    const object = await objectOf(nas, damaged);
    const bytes = readFileSync(object);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    writeFileSync(object, bytes);

    const sync = await syncJson(config);
    expect(sync.code).toBe(1);
    expect(sync.lines.find((l) => l.name === good)).toMatchObject({ status: 'copied' });
    expect(sync.lines.find((l) => l.name === damaged)).toMatchObject({
      kind: 'segment',
      from: 'primary',
      to: 'secondary',
      status: 'failed',
      reason: expect.stringMatching(
        new RegExp(`^${damaged} in the primary store .* is damaged: .*not copied$`),
      ),
    });
    const names = (await listKeys(bucket)).map((k) => parseWalObjectKey(k)?.name);
    expect(names).toContain(good);
    expect(names).not.toContain(damaged);
    expect((await fetched(damaged, s3)).code).toBe(1);

    const plain = await runCli(['sync', '--config', config]);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toMatch(new RegExp(`^FAILED  main ${damaged} primary → secondary: .*damaged`, 'm'));
  });

  it('leaves a name the target holds with other contents alone, and reports the conflict', async () => {
    const { nas, s3, config } = await twoStores();
    const [name] = segments as [string];
    const original = readFileSync(join(work, name));
    const other = Buffer.from(original);
    other[other.length - 100] = (other[other.length - 100] ?? 0) ^ 0xff;
    await push(name, `file://${nas}`);
    await push(name, s3, other);

    const sync = await syncJson(config);
    expect(sync.code).toBe(1);
    expect(sync.lines).toEqual([
      expect.objectContaining({
        kind: 'segment',
        name,
        status: 'conflict',
        reason: expect.stringMatching(/neither is replaced/),
      }),
    ]);
    expect((await fetched(name, `file://${nas}`)).bytes?.equals(original)).toBe(true);
    expect((await fetched(name, s3)).bytes?.equals(other)).toBe(true);
  });
});

describe('pgbp status with two stores', () => {
  it('shows each store’s archive and warns of the one trailing the other past the RPO, until synced', async () => {
    const { nas, s3, config, bucket } = await twoStores();
    const [first, ...rest] = segments as [string, ...string[]];
    await push(first, s3);
    for (const name of segments) await push(name, `file://${nas}`);
    // Archived on the NAS an hour ago (the file store dates an object by its file's time).
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const name of rest) utimesSync(await objectOf(nas, name), hourAgo, hourAgo);

    type Shown = {
      stores: { role: string; clusters?: { cluster: string; newestSegment: { name: string } | null }[] }[];
      archiveLag: { behind: string; segments: number; oldestMissing: string; overRpo: boolean }[];
    };
    const status = await runCli(['status', '--config', config, '--json']);
    expect(status.stderr).toBe('');
    const shown = JSON.parse(status.stdout) as Shown;
    expect(shown.stores.map((s) => [s.role, s.clusters?.[0]?.newestSegment?.name])).toEqual([
      ['primary', segments.at(-1)],
      ['secondary', first],
    ]);
    expect(shown.archiveLag).toEqual([
      expect.objectContaining({
        behind: 'secondary',
        segments: rest.length,
        oldestMissing: rest[0],
        overRpo: true,
      }),
    ]);
    const plain = await runCli(['status', '--config', config]);
    expect(plain.stdout).toMatch(
      new RegExp(
        `^  WARNING cluster main: the secondary store \\(s3://${bucket}/backups\\) trails the primary by ${rest.length} WAL segments \\(from ${rest[0]}, archived \\d+ min ago; RPO 5 min\\): pgbp sync --cluster main$`,
        'm',
      ),
    );
    expect(plain.stdout).toMatch(new RegExp(`^  cluster main: .*newest segment ${first} archived `, 'm'));

    expect((await runCli(['sync', '--config', config])).code).toBe(0);
    const after = await runCli(['status', '--config', config]);
    expect(after.stdout).toMatch(/^ {2}cluster main: the same WAL segments$/m);
    expect(after.stdout).not.toMatch(/trails/);
  });
});

describe('the scheduled backup run', () => {
  it('copies the WAL one store lacks along with the backups, and reports it', async () => {
    const { nas, s3, config } = await twoStores();
    const database = uniqueDbName('sync_physical');
    await createDatabase(database, 'create table t as select g from generate_series(1, 100) g');
    try {
      for (const name of segments) await push(name, s3);
      const stdout = sink();
      const code = await dumpTask({
        env: { ...process.env, PGBP_DATABASE: database, PGBP_CONFIG: config },
        stdout: stdout.stream,
        stderr: sink().stream,
      });
      expect(code).toBe(0);
      const result = JSON.parse(stdout.text()) as {
        degraded: boolean;
        syncedPhysical: { tally: unknown[]; notCopied: unknown[] };
      };
      expect(result.degraded).toBe(false);
      expect(result.syncedPhysical).toEqual({
        tally: [
          expect.objectContaining({
            cluster: 'main',
            from: 'secondary',
            to: 'primary',
            kind: 'segment',
            status: 'copied',
            count: segments.length,
          }),
        ],
        notCopied: [],
      });
      for (const name of segments) {
        expect((await fetched(name, `file://${nas}`)).bytes?.equals(readFileSync(join(work, name)))).toBe(
          true,
        );
      }
    } finally {
      await dropDatabase(database);
    }
  });

  it('alerts what it could not copy and what conflicts, naming the store and cause, and the backup succeeds', async () => {
    const inbox = await alertInbox('sync-problems');
    const { nas, s3, config } = await twoStores([
      `alerts: { console: false, snsTopicArn: "${inbox.topicArn}" }`,
    ]);
    const database = uniqueDbName('sync_alert');
    await createDatabase(
      database,
      'create table t as select g, md5(g::text) m from generate_series(1, 3000) g',
    );
    try {
      const [conflicting, damaged] = segments as [string, string];
      // A name each store holds with other contents, and a copy on the NAS that a failing disk
      // damaged: neither can be copied across.
      const other = readFileSync(join(work, conflicting));
      other[other.length - 100] = (other[other.length - 100] ?? 0) ^ 0xff;
      await push(conflicting, `file://${nas}`);
      await push(conflicting, s3, other);
      await push(damaged, `file://${nas}`);
      const object = await objectOf(nas, damaged);
      const bytes = readFileSync(object);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] as number) ^ 0x01;
      writeFileSync(object, bytes);

      const run = await runCli(['backup', '--database', database, '--config', config, '--json']);
      expect(run.code, run.stderr + run.stdout).toBe(0);
      const execution = JSON.parse(run.stdout) as ExecutionJson<{
        databases: { database: string; status: string }[];
      }>;
      expect(execution.status).toBe('SUCCEEDED');
      expect(execution.summary.databases).toEqual([
        expect.objectContaining({ database, status: 'succeeded' }),
      ]);

      const [alert] = await inbox.received(1);
      expect(alert?.Subject).toBe(
        `[WARNING] Stores not synced (one store lacks what the other holds): ${database}`,
      );
      expect(alert?.Message).toMatch(
        new RegExp(
          `^CONFLICT in the secondary store \\(${s3}\\): WAL segment ${conflicting} of cluster main: the primary store holds ${conflicting} with sha256 [0-9a-f]{64}, the secondary store with [0-9a-f]{64}: neither is replaced$`,
          'm',
        ),
      );
      expect(alert?.Message).toMatch(
        new RegExp(
          `^Not copied to the secondary store \\(${s3}\\): WAL segment ${damaged} of cluster main: ${damaged} in the primary store \\(file://${nas}\\) is damaged: .*not copied$`,
          'm',
        ),
      );
      expect(inbox.notifications()).toHaveLength(1);
    } finally {
      await inbox.close();
      await dropDatabase(database);
    }
  });

  it('alerts a store it could not read, naming it, while the dump itself landed in both', async () => {
    const { nas, s3, config } = await twoStores();
    const database = uniqueDbName('sync_unreadable');
    await createDatabase(database, 'create table t as select g from generate_series(1, 100) g');
    try {
      await push(segments[0] as string, s3);
      // The cluster's folder on the NAS cannot be read (a file where its folder should be, as a
      // broken mount can leave it); the dump goes to the database's own folder all the same.
      mkdirSync(join(nas, '~cluster'));
      writeFileSync(join(nas, '~cluster', 'main'), 'not a folder');
      const stdout = sink();
      const code = await dumpTask({
        env: { ...process.env, PGBP_DATABASE: database, PGBP_CONFIG: config },
        stdout: stdout.stream,
        stderr: sink().stream,
      });
      expect(code).toBe(0);
      const result = JSON.parse(stdout.text()) as { degraded: boolean; syncProblems: unknown };
      expect(result.degraded).toBe(false);
      expect(result.syncProblems).toEqual({
        count: 1,
        shown: [
          {
            role: 'primary',
            url: `file://${nas}`,
            status: 'failed',
            subject: 'the physical archive of cluster main: not synced',
            cause: expect.stringMatching(
              /^cannot read the physical archive of cluster main in the primary store \(file:\/\/.*\): /,
            ),
          },
        ],
      });
    } finally {
      await dropDatabase(database);
    }
  });
});
