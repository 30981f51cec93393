import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ArchivingCluster, startArchivingCluster } from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { freePort } from '../../support/ports.js';
import { pgBin } from '../../support/scratch-cluster.js';
import { switchAndWaitArchived } from '../../support/wal.js';

/**
 * Point-in-time recovery as an operator runs it, with nothing but pgbp: archive_command is
 * `pgbp wal-push`, the base backup `pgbp basebackup`, and `pgbp recover` gives the recovered
 * server `pgbp wal-fetch` as its restore_command.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const IDS = "select coalesce(string_agg(id::text, ',' order by id), '') from entries";

let archiving: ArchivingCluster;
let config: string;
const recovered: string[] = [];

beforeAll(async () => {
  expect((await runCli(['--version'])).code).toBe(0);
  archiving = await startArchivingCluster({
    walSegmentMb: 1,
    config: (root, url) =>
      writeConfigFile(root, {
        stage: 'local',
        store: url,
        wal: { cluster: 'ledger' },
        databases: [
          {
            name: 'postgres',
            assertions: [
              { name: 'rows up to the target', sql: 'select count(*) from entries', expect: { equals: 2 } },
            ],
          },
        ],
        alerts: { console: false },
      }),
  });
  config = archiving.archiveArgs[1] as string;
});

afterAll(() => {
  for (const pgdata of recovered) {
    if (existsSync(join(pgdata, 'postmaster.pid'))) {
      spawnSync(
        'runuser',
        ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', pgdata, '-m', 'immediate', '-w', 'stop'],
        {
          stdio: 'ignore',
        },
      );
    }
  }
  archiving?.source.remove();
});

describe('point-in-time recovery with pgbp wal-push, basebackup, recover and wal-fetch', {
  timeout: 300_000,
}, () => {
  it('recovers to a time between two commits: the rows committed before it, none after', async () => {
    const { source, root } = archiving;
    source.sql(
      'create table entries (id int primary key, at timestamptz not null default clock_timestamp())',
    );
    // The first push (as postgres) makes the archive, before pgbp basebackup (as this user) adds to it.
    await switchAndWaitArchived(source);
    const env = { ...source.env(), PGUSER: 'postgres' };
    const backup = await runCli(['basebackup', '--config', config, '--json'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    const manifest = JSON.parse(backup.stdout) as { id: string };

    for (const id of [1, 2]) {
      source.sql(`insert into entries (id) values (${id})`);
      await sleep(200);
    }
    await switchAndWaitArchived(source);
    const target = source.sql('select clock_timestamp()');
    await sleep(300);
    for (const id of [3, 4]) {
      source.sql(`insert into entries (id) values (${id})`);
      await switchAndWaitArchived(source);
    }
    expect(source.sql(IDS)).toBe('1,2,3,4');

    const pgdata = join(root, 'recovered');
    recovered.push(pgdata);
    const port = await freePort();
    const run = await runCli(
      [
        'recover',
        '--pgdata',
        pgdata,
        '--target-time',
        new Date(target).toISOString(),
        '--start',
        '--port',
        String(port),
        '--config',
        config,
        '--json',
      ],
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as {
      baseId: string;
      passed: boolean;
      recoveryPoint: string | null;
      checks: { name: string; passed: boolean }[];
    };
    expect(report).toMatchObject({ baseId: manifest.id, passed: true });
    expect(report.checks).toContainEqual(
      expect.objectContaining({ name: 'postgres: rows up to the target', passed: true }),
    );
    expect(Date.parse(report.recoveryPoint ?? '')).toBeLessThanOrEqual(
      Date.parse(new Date(target).toISOString()),
    );
    const rows = spawnSync('psql', ['-XAtqc', IDS], {
      env: { ...env, PGHOST: '127.0.0.1', PGPORT: String(port) },
      encoding: 'utf8',
    });
    expect(rows.stdout.trim()).toBe('1,2');
    // The WAL came through pgbp wal-fetch: restore_command names it, and the server restored from it.
    expect(readFileSync(join(pgdata, 'postgresql.auto.conf'), 'utf8')).toMatch(
      /cli\/pgbp wal-fetch %f %p --config/,
    );
    expect(readFileSync(join(pgdata, 'pgbp-recovery.log'), 'utf8')).toMatch(
      /restored log file "[0-9A-F]{24}" from archive/,
    );
  });
});
