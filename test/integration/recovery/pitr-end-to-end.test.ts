import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isEnvelope } from '../../../lib/storage/encrypting-store.js';
import { type ArchivingCluster, startArchivingCluster } from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { freePort } from '../../support/ports.js';
import { pgBin, postgresIds } from '../../support/scratch-cluster.js';
import { switchAndWaitArchived } from '../../support/wal.js';

/**
 * Point-in-time recovery as an operator runs it, with nothing but pgbp: archive_command is
 * `pgbp wal-push`, the base backup `pgbp basebackup`, and `pgbp recover` gives the recovered
 * server `pgbp wal-fetch` as its restore_command. The stage encrypts under a key file, as an
 * offline stage does: every WAL segment and the base backup are stored as ciphertext.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const IDS = "select coalesce(string_agg(id::text, ',' order by id), '') from entries";

let archiving: ArchivingCluster;
let config: string;
const recovered: string[] = [];

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

beforeAll(async () => {
  expect((await runCli(['--version'])).code).toBe(0);
  archiving = await startArchivingCluster({
    walSegmentMb: 1,
    config: (root, url) => {
      // Read by wal-push as postgres, and by basebackup and recover as this user.
      const key = join(root, 'stage.key');
      writeFileSync(key, randomBytes(32), { mode: 0o600 });
      chownSync(key, postgresIds().uid, postgresIds().gid);
      return writeConfigFile(root, {
        stage: 'local',
        store: url,
        encryption: { keyFile: key, required: true },
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
      });
    },
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

/**
 * The objects in a directory store. A recovered server that promoted archives its new timeline
 * into the same store meanwhile: a write still in progress (`.<name>.partial-<hex>`, renamed once
 * complete) is not a stored object yet, and is gone by the time it would be read.
 */
function storedObjects(dir: string): string[] {
  return listFiles(dir).filter((f) => !/\/\.[^/]+\.partial-[0-9a-f]+$/.test(f));
}

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
    // Every data object is an Encryption SDK message; the manifest says how it was encrypted.
    const stored = storedObjects(archiving.storeDir as string);
    const data = stored.filter((f) => !f.endsWith('.json'));
    expect(data.filter((f) => f.includes('/wal/')).length).toBeGreaterThan(3);
    expect(data.some((f) => f.includes('/base/'))).toBe(true);
    for (const f of data) expect(isEnvelope(readFileSync(f))).toBe(true);
    const baseManifest = stored.find((f) => f.endsWith(`${manifest.id}.manifest.json`)) as string;
    expect(JSON.parse(readFileSync(baseManifest, 'utf8'))).toMatchObject({
      encryption: {
        envelope: {
          format: 'aws-encryption-sdk',
          suite: 'ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY',
          context: { 'pgbp:stage': 'local', 'pgbp:cluster': 'ledger', 'pgbp:base': manifest.id },
        },
      },
    });
  });

  it('refuses an encrypted base backup with one flipped byte before anything reaches the data directory', async () => {
    const stored = storedObjects(archiving.storeDir as string);
    const tar = stored.find((f) => f.endsWith('/base.tar.zst')) as string;
    const bytes = readFileSync(tar);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0x01;
    writeFileSync(tar, bytes);
    const pgdata = join(archiving.root, 'tampered');
    const run = await runCli(['recover', '--pgdata', pgdata, '--latest', '--config', config, '--json'], {
      env: { ...archiving.source.env(), PGUSER: 'postgres' },
    });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/CorruptBackupError: .*(does not authenticate|does not match its manifest)/);
    expect(existsSync(pgdata) ? readdirSync(pgdata) : []).toEqual([]);
  });
});
