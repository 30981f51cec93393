import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../cli/main.js';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import type { StoreStatus } from '../../../lib/monitor/staleness.js';
import type { RetentionReport } from '../../../lib/retention/run.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { putBackup, putDebris, withTempDir } from '../../support/manifests.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { writeConfigFile } from '../../support/pipeline.js';

const HOUR = 3_600_000;

/** Runs `pgbp` in-process, as a user would from `dir` (no config file there: the built-in defaults). */
async function pgbp(dir: string, ...args: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const code = await main(args, { env: {}, cwd: dir, stdout, stderr });
  return { code, stdout: out, stderr: err };
}

async function keys(store: BackupStore): Promise<string[]> {
  const found: string[] = [];
  for await (const o of store.list('')) found.push(o.key);
  return found.sort();
}

/** Ten daily backups of `app`, the newest `newestHoursAgo` hours old. */
async function tenDays(store: BackupStore, newestHoursAgo: number) {
  const now = Date.now();
  const manifests = [];
  for (let i = 0; i < 10; i += 1) {
    manifests.push(
      await putBackup(store, 'app', new Date(now - (newestHoursAgo + i * 24) * HOUR), { verify: i === 2 }),
    );
  }
  return manifests;
}

describe('pgbp retention', () => {
  it('previews the plan with --dry-run and deletes nothing, then applies it', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(`${dir}/store`);
      const manifests = await tenDays(store, 1);
      const before = await keys(store);
      const config = await writeConfigFile(dir, {
        stage: 'local',
        store: `file://${dir}/store`,
        databases: [{ name: 'app', retention: { daily: 7, monthly: 0, yearly: 0 } }],
      });
      const preview = await pgbp(dir, 'retention', '--dry-run', '--json', '--config', config);
      expect(preview.code).toBe(0);
      const plan = JSON.parse(preview.stdout) as { dryRun: boolean; databases: RetentionReport[] };
      expect(plan.dryRun).toBe(true);
      expect(plan.databases.map((d) => d.database)).toEqual(['app']);
      expect(plan.databases[0]?.kept.map((k) => k.id)).toEqual(manifests.slice(0, 7).map((m) => m.id));
      expect(plan.databases[0]?.remove.map((b) => b.id)).toEqual(manifests.slice(7).map((m) => m.id));
      expect(await keys(store)).toEqual(before);

      const applied = await pgbp(dir, 'retention', '--config', config);
      expect(applied.code).toBe(0);
      expect(applied.stdout).toContain(`keep    ${manifests[0]?.id}`);
      expect(applied.stdout).toMatch(/newest, daily/);
      expect(applied.stdout).toContain(`delete  ${manifests[9]?.id}`);
      const after = await keys(store);
      for (const m of manifests.slice(7)) expect(after).not.toContain(m.key);
      for (const m of manifests.slice(0, 7)) expect(after).toContain(m.key);
    });
  });

  it('deletes nothing and exits 2 when the newest backup is stale', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(`${dir}/store`);
      await tenDays(store, 40);
      await putDebris(store, 'app', new Date('2024-01-01T00:00:00Z'));
      const before = await keys(store);
      const run = await pgbp(dir, 'retention', '--database', 'app', '--store', `file://${dir}/store`);
      expect(run.code).toBe(2);
      expect(run.stdout).toMatch(
        /blocked: nothing deleted because the newest good backup app-\S+ is 40\.\d h old/,
      );
      expect(await keys(store)).toEqual(before);
    });
  });
});

describe('pgbp retention of a database that is not configured', () => {
  let adhoc: string;
  beforeAll(async () => {
    adhoc = uniqueDbName('adhoc');
    await createDatabase(adhoc, 'create table t as select g from generate_series(1, 100) g');
  });
  afterAll(() => dropDatabase(adhoc));

  it('applies the defaults to a database backed up with pgbp dump, says so, and the configured one its own settings', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(`${dir}/store`);
      const apps = [];
      for (let i = 0; i < 4; i += 1)
        apps.push(await putBackup(store, 'app', new Date(Date.now() - (1 + i * 24) * HOUR)));
      const config = await writeConfigFile(dir, {
        stage: 'local',
        store: `file://${dir}/store`,
        databases: [{ name: 'app', retention: { daily: 2, monthly: 0, yearly: 0, minKeep: 1 } }],
      });
      // Ten days of an earlier March, none on the 1st; the newest backup is today's real dump.
      const march = [];
      for (let day = 11; day >= 2; day -= 1)
        march.push(await putBackup(store, adhoc, new Date(Date.UTC(2020, 2, day, 2, 0, 0))));
      const dumped = await pgbp(dir, 'dump', '--database', adhoc, '--config', config, '--json');
      expect(dumped.stderr).toBe('');
      expect(dumped.code).toBe(0);
      const today = JSON.parse(dumped.stdout) as { id: string };

      const preview = await pgbp(dir, 'retention', '--dry-run', '--json', '--config', config);
      expect(preview.code).toBe(0);
      const plan = JSON.parse(preview.stdout) as { databases: (RetentionReport & { defaults: boolean })[] };
      expect(plan.databases.map((d) => [d.database, d.defaults])).toEqual([
        ['app', false],
        [adhoc, true],
      ]);

      const applied = await pgbp(dir, 'retention', '--config', config);
      expect(applied.stderr).toBe('');
      expect(applied.code).toBe(0);
      // The defaults: 7 daily (today and six of March), 12 monthly and 7 yearly (the earliest of each).
      expect(applied.stdout).toContain(`${adhoc}: keep 8, deleted 3 backups and 0 debris`);
      expect(applied.stdout).toContain(`  ${adhoc} is not configured: the default retention applies`);
      expect(applied.stdout).toContain('app: keep 2, deleted 2 backups and 0 debris');
      expect(applied.stdout).not.toContain('app is not configured');
      const left = (await keys(store)).filter((k) => k.endsWith('.manifest.json'));
      const leftIds = left.map((k) => k.split('/').at(-1)?.replace('.manifest.json', '')).sort();
      expect(leftIds).toEqual(
        [
          today.id,
          ...march.slice(0, 6).map((m) => m.id),
          march[9]?.id,
          ...apps.slice(0, 2).map((m) => m.id),
        ].sort(),
      );
    });
  });
});

describe('pgbp retention of a stale database that is not configured', () => {
  it('holds its backups and reports it, without the exit 2 of a configured stale database', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(`${dir}/store`);
      await tenDays(store, 40);
      await putBackup(store, 'other', new Date(Date.now() - HOUR));
      const config = await writeConfigFile(dir, {
        stage: 'local',
        store: `file://${dir}/store`,
        databases: [{ name: 'other' }],
      });
      const before = await keys(store);
      const run = await pgbp(dir, 'retention', '--config', config);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('  app is not configured: the default retention applies');
      expect(run.stdout).toMatch(
        /blocked: nothing deleted because the newest good backup app-\S+ is 40\.\d h old/,
      );
      expect(await keys(store)).toEqual(before);
    });
  });
});

describe('pgbp status', () => {
  it('shows each database’s newest backup, tier counts and last restore check, exit 0 when fresh', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(`${dir}/store`);
      const manifests = await tenDays(store, 3);
      const run = await pgbp(dir, 'status', '--json', '--store', `file://${dir}/store`);
      expect(run.code).toBe(0);
      const status = JSON.parse(run.stdout) as StoreStatus;
      const [app] = status.databases;
      expect(app).toMatchObject({
        database: 'app',
        stale: false,
        watched: true,
        newest: { id: manifests[0]?.id, sizeBytes: 64 },
        counts: { total: 10 },
        lastRestoreCheck: { backupId: manifests[2]?.id },
      });
      expect(app?.ageHours).toBeCloseTo(3, 1);
      expect(status.freeSpace?.freeRatio).toBeGreaterThan(0);
      const text = await pgbp(dir, 'status', '--store', `file://${dir}/store`);
      expect(text.stdout).toContain(`app: ok  ${manifests[0]?.id}  3.0 h old  64 B`);
      expect(text.stdout).toContain(`checked ${manifests[2]?.id}`);
    });
  });

  it('shows whether the last restore check passed or failed', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(`${dir}/store`);
      const now = Date.now();
      const older = await putBackup(store, 'app', new Date(now - 27 * HOUR));
      const newer = await putBackup(store, 'app', new Date(now - 3 * HOUR));
      const report = (id: string, passed: boolean) => JSON.stringify({ backupId: id, passed });
      await store.putBytes(keysFor('', older.id).verify, report(older.id, true));
      await store.putBytes(keysFor('', newer.id).verify, report(newer.id, false));

      const failed = await pgbp(dir, 'status', '--store', `file://${dir}/store`);
      expect(failed.stdout).toMatch(new RegExp(`checked ${newer.id} at \\S+: FAILED`));
      const json = JSON.parse((await pgbp(dir, 'status', '--json', '--store', `file://${dir}/store`)).stdout);
      expect((json as StoreStatus).databases[0]?.lastRestoreCheck).toMatchObject({
        backupId: newer.id,
        passed: false,
      });

      await store.putBytes(keysFor('', newer.id).verify, report(newer.id, true), { replace: true });
      const passed = await pgbp(dir, 'status', '--store', `file://${dir}/store`);
      expect(passed.stdout).toMatch(new RegExp(`checked ${newer.id} at \\S+: passed`));
    });
  });

  it('exits 2 for cron and monitoring when a database is stale', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(`${dir}/store`);
      await tenDays(store, 30);
      const run = await pgbp(dir, 'status', '--store', `file://${dir}/store`);
      expect(run.code).toBe(2);
      expect(run.stdout).toMatch(/app: STALE {2}app-\S+ {2}30\.0 h old/);
    });
  });
});
