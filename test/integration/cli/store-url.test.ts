import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../cli/main.js';
import { BUILT_IN_CONFIG } from '../../../cli/resolve.js';
import { parseConfig } from '../../../lib/config.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { putBackup, withTempDir } from '../../support/manifests.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { writeConfigFile } from '../../support/pipeline.js';

/** Runs `pgbp` in-process, as a user would from `dir`. */
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
  const code = await main(args, { env: { ...process.env }, cwd: dir, stdout, stderr });
  return { code, stdout: out, stderr: err };
}

let database: string;
beforeAll(async () => {
  database = uniqueDbName('storeurl');
  await createDatabase(database, 'create table t as select g from generate_series(1, 10) g');
});
afterAll(() => dropDatabase(database));

describe('file: store URLs', () => {
  it.each([['list', '--database', 'app'], ['status'], ['dump', '--database', 'app']])(
    'refuses a host in file://tmp/x for %s, writing nothing',
    async (...command) => {
      await withTempDir(async (dir) => {
        const run = await pgbp(dir, ...command, '--store', 'file://tmp/x');
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(
          /file:\/\/tmp\/x: a file: URL's host must be empty or localhost, not "tmp"/,
        );
        expect(run.stderr).toContain('file:///tmp/x');
        expect(run.stderr).toContain('file:tmp/x');
        expect(readdirSync(dir)).toEqual([]);
      });
    },
  );

  it('refuses a host in a config file’s store, naming the file and the key', async () => {
    await withTempDir(async (dir) => {
      const config = await writeConfigFile(dir, { stage: 'local', store: 'file://nas/backups' });
      const run = await pgbp(dir, 'status', '--config', config);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`${config}: store: `);
      expect(run.stderr).toContain('host must be empty or localhost, not "nas"');
    });
  });

  it('takes file://localhost/dir, file:///dir and file:dir (relative to the working directory) as the same directory', async () => {
    await withTempDir(async (dir) => {
      const store = new FileStore(join(dir, 'nas'));
      const backup = await putBackup(store, 'app', new Date('2026-06-20T02:00:00Z'));
      for (const url of [`file://localhost${dir}/nas`, `file://${dir}/nas`, 'file:nas', 'file:./nas']) {
        const run = await pgbp(dir, 'list', '--database', 'app', '--store', url, '--json');
        expect(run.stderr, url).toBe('');
        expect(
          (JSON.parse(run.stdout) as { id: string }[]).map((m) => m.id),
          url,
        ).toEqual([backup.id]);
      }
    });
  });

  it('dumps into ./backups of the working directory with the built-in defaults', async () => {
    expect(parseConfig(BUILT_IN_CONFIG, 'built-in').store).toBe('file:./backups');
    await withTempDir(async (dir) => {
      const run = await pgbp(dir, 'dump', '--database', database, '--json');
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const { key } = JSON.parse(run.stdout) as { key: string };
      expect(existsSync(join(dir, 'backups', key))).toBe(true);
    });
  });
});

describe('reading commands on a store directory that does not exist', () => {
  it.each([
    ['status'],
    ['list', '--database', 'app'],
    ['verify', 'latest', '--database', 'app'],
    ['restore', 'latest', '--database', 'app', '--target-db', 'app_copy'],
    ['retention', '--dry-run', '--database', 'app'],
    ['thaw', 'app-20260620T020000Z', '--database', 'app'],
  ])('%s fails naming the missing directory and creates nothing', async (...command) => {
    await withTempDir(async (dir) => {
      const typo = join(dir, 'typo');
      const run = await pgbp(dir, ...command, '--store', `file://${typo}`);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`store file://${typo}: the directory ${typo} does not exist`);
      expect(existsSync(typo)).toBe(false);
    });
  });
});
