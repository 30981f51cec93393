import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { cksumOf } from '../../../lib/wal/cksum.js';
import { archiveTag, entryName, prefetchDir, pushedDir, sha256Of, spool } from '../../../lib/wal/spool.js';
import {
  type RunResult,
  readOnlyInstall,
  removeInstall,
  runAs,
  SYSTEMD_PATH,
  snapshot,
} from '../../support/install.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { waitFor } from '../../support/wal.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const USER = 'postgres';
const uid = (name: string, flag: '-u' | '-g') =>
  Number(execFileSync('id', [flag, name], { encoding: 'utf8' }));

/** The environment of a service run by systemd as the postgres user, plus `extra`. */
function serviceEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: SYSTEMD_PATH, HOME: '/var/lib/postgresql', USER, LOGNAME: USER, LANG: 'C.UTF-8', ...extra };
}

/** The libpq settings of this test run, which the postgres user's pgbp must reach too. */
const libpq = {
  PGHOST: process.env.PGHOST ?? '127.0.0.1',
  PGPORT: process.env.PGPORT ?? '5432',
  PGUSER: process.env.PGUSER ?? 'postgres',
};

interface Unit {
  readonly file: string;
  readonly sections: Record<string, Record<string, string>>;
}

/** The systemd units that docs/RUNBOOK.md §1 tells an operator to install, as written there. */
function runbookUnits(): Unit[] {
  // §1's units: the scheduled backups and drills of an on-premises install.
  const whole = readFileSync(join(ROOT, 'docs/RUNBOOK.md'), 'utf8');
  const start = whole.indexOf('\n## 1. ');
  const runbook = whole.slice(start, whole.indexOf('\n## 2. ', start));
  const units: Unit[] = [];
  for (const block of runbook.matchAll(/```ini\n([\s\S]*?)```/g)) {
    let unit: Unit | undefined;
    let section: Record<string, string> | undefined;
    for (const line of (block[1] as string).split('\n')) {
      const header = /^# (\/etc\/systemd\/system\/\S+\.(service|timer))$/.exec(line);
      if (header) {
        unit = { file: header[1] as string, sections: {} };
        units.push(unit);
        continue;
      }
      const name = /^\[(\w+)\]$/.exec(line)?.[1];
      if (name && unit) {
        section = {};
        unit.sections[name] = section;
        continue;
      }
      const setting = /^(\w+)=(.*)$/.exec(line);
      if (setting && section) section[setting[1] as string] = setting[2] as string;
    }
  }
  return units;
}

const services = runbookUnits().filter((u) => u.file.endsWith('.service'));

const db = uniqueDbName('ro_install');
let store: string;
let install: string;
let unbuilt: string;
let installed: string[];

beforeAll(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error('these tests make a root-owned install and run pgbp in it as postgres: run them as root');
  }
  await createDatabase(
    db,
    `create table t (id int primary key, v text);
     insert into t select g, md5(g::text) from generate_series(1, 2000) g;
     analyze t;`,
  );
  // The NAS share: owned by the postgres user, outside the install.
  store = mkdtempSync(join(tmpdir(), 'pgbp-nas-'));
  chownSync(store, uid(USER, '-u'), uid(USER, '-g'));
  install = readOnlyInstall({
    // What the runbook tells the operator to do before enabling the timers: edit config/nas.yml.
    edit: (dir) => {
      const path = join(dir, 'config/nas.yml');
      const config = parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      // The NAS alone: the shipped S3 secondary is not reachable from here.
      delete config.stores;
      config.store = `file://${store}`;
      config.connection = { host: libpq.PGHOST, port: Number(libpq.PGPORT), user: libpq.PGUSER };
      config.databases = [{ name: db }];
      writeFileSync(path, stringify(config));
    },
  });
  unbuilt = readOnlyInstall({ withBuild: false });
  installed = snapshot(install);
});

afterAll(async () => {
  if (install) removeInstall(install);
  if (unbuilt) removeInstall(unbuilt);
  if (store) rmSync(store, { recursive: true, force: true });
  await dropDatabase(db);
});

function pgbp(args: readonly string[], env: NodeJS.ProcessEnv = serviceEnv(libpq)): Promise<RunResult> {
  return runAs(USER, [process.execPath, join(install, 'cli/pgbp.cjs'), ...args], { cwd: install, env });
}

describe('pgbp installed read-only by root, run as the postgres OS user', () => {
  it('is an install that the postgres user cannot write to', async () => {
    expect(statSync(install).uid).toBe(0);
    expect(statSync(join(install, 'dist/cli')).mode & 0o222).toBe(0);
    const touch = await runAs(USER, ['touch', join(install, 'dist/cli/probe')], {
      cwd: install,
      env: serviceEnv(),
    });
    expect(touch.code).not.toBe(0);
    expect(touch.stderr).toMatch(/Permission denied/);
  });

  it('prints its version', async () => {
    const result = await pgbp(['--version']);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.code).toBe(0);
  });

  it('dumps into a directory store that user owns and lists the backup, writing nothing into the install', async () => {
    const dump = await pgbp(['dump', '--database', db, '--store', `file://${store}`, '--json']);
    expect(dump.code, dump.stderr).toBe(0);
    const manifest = JSON.parse(dump.stdout) as { id: string; sizeBytes: number };
    expect(manifest.sizeBytes).toBeGreaterThan(0);

    const list = await pgbp(['list', '--database', db, '--store', `file://${store}`, '--json']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { id: string }[]).map((b) => b.id)).toEqual([manifest.id]);
    expect(snapshot(install)).toEqual(installed);
  });

  it('answers PostgreSQL through the installed pgbp launcher: spooled fetches and recorded pushes itself, the rest through the CLI', async () => {
    const bin = JSON.parse(readFileSync(join(install, 'package.json'), 'utf8')).bin.pgbp as string;
    const launcher = join(install, bin);
    // A data directory of the postgres user's, with a spooled segment and a push ahead's record.
    const data = mkdtempSync(join(tmpdir(), 'pgbp-ro-data-'));
    try {
      const url = `file://${store}`;
      const name = '000000010000000000000007';
      const bytes = randomBytes(1 << 20);
      const check = await cksumOf(bytes, process.env);
      await spool(prefetchDir(data, archiveTag(data, { store: url })), name, sha256Of(bytes), bytes, check);
      writeFileSync(join(data, 'pg_wal', name), bytes);
      const records = pushedDir(data, archiveTag(data, { store: url }));
      mkdirSync(records, { recursive: true });
      writeFileSync(join(records, entryName(name, sha256Of(bytes), check)), '');
      execFileSync('chown', ['-R', `${uid(USER, '-u')}:${uid(USER, '-g')}`, data]);
      const run = (args: string[]) =>
        runAs(USER, [launcher, ...args, '--store', url], { cwd: data, env: serviceEnv() });

      const fetched = await run(['wal-fetch', name, 'pg_wal/RECOVERYXLOG']);
      expect(fetched, fetched.stderr).toMatchObject({ code: 0, stderr: '' });
      expect(readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(bytes)).toBe(true);
      const pushed = await run(['wal-push', `pg_wal/${name}`]);
      expect(pushed, pushed.stderr).toMatchObject({ code: 0, stderr: '' });
      expect(readdirSync(records)).toEqual([]);
      // Not spooled: the launcher runs the installed CLI (node from systemd's PATH), which says
      // this store holds no archive and stops recovery rather than end it.
      const missed = await run(['wal-fetch', '000000010000000000000008', 'pg_wal/RECOVERYXLOG']);
      expect(missed.stderr).toContain('WalArchiveUnavailableError: there is no WAL archive main');
      expect(missed.code).toBe(126);
      expect(snapshot(install)).toEqual(installed);
    } finally {
      // The spooled fetch started the prefetcher, which sees no recovery and exits: removing the
      // folder while it still cleans its spool up fails (ENOTEMPTY) or leaves it behind.
      const lock = join(prefetchDir(data, archiveTag(data, { store: `file://${store}` })), '.prefetcher');
      await waitFor('the prefetcher to exit', () => !existsSync(lock), 30_000);
      rmSync(data, { recursive: true, force: true });
    }
  });

  it.each(['cli/pgbp.cjs', 'cli/pgbp.mjs'])(
    '%s says what to run, in one line and without a stack trace, when the install was never built',
    async (entry) => {
      for (const args of [
        ['--version'],
        ['status', '--help'],
        ['wal-fetch', '000000010000000000000001', 'pg_wal/RECOVERYXLOG'],
      ]) {
        const result = await runAs(USER, [process.execPath, join(unbuilt, entry), ...args], {
          cwd: unbuilt,
          env: serviceEnv(),
        });
        expect(result.stdout).toBe('');
        expect(result.stderr).toBe(
          `pgbp: the built CLI in ${join(unbuilt, 'dist')} is missing or incomplete: run \`npm ci\` (or \`npm run build\`) in ${unbuilt}\n`,
        );
        // Above 125, as for a command not found: PostgreSQL aborts recovery rather than end it early.
        expect(result.code).toBe(127);
      }
    },
  );

  it('runs the same from the earlier entry, cli/pgbp.mjs', async () => {
    const result = await runAs(USER, [process.execPath, join(install, 'cli/pgbp.mjs'), '--version'], {
      cwd: install,
      env: serviceEnv(),
    });
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.code).toBe(0);
  });
});

describe('the systemd units of docs/RUNBOOK.md §1', () => {
  it('run a backup service and a drill service as postgres from /opt/pg-backup-pipeline, each with a timer', () => {
    expect(services.map((s) => s.file)).toEqual([
      '/etc/systemd/system/pgbp-backup.service',
      '/etc/systemd/system/pgbp-drill.service',
    ]);
    const timers = runbookUnits().filter((u) => u.file.endsWith('.timer'));
    expect(timers.map((t) => t.file.replace(/\.timer$/, '.service'))).toEqual(services.map((s) => s.file));
    for (const timer of timers) expect(timer.sections.Timer?.OnCalendar).toBeTruthy();
    for (const service of services) {
      expect(service.sections.Service).toMatchObject({
        Type: 'oneshot',
        User: USER,
        WorkingDirectory: '/opt/pg-backup-pipeline',
      });
      // systemd wants an absolute executable, and splits on spaces here: no quoting to get wrong.
      const exec = service.sections.Service?.ExecStart ?? '';
      expect(exec).not.toMatch(/["'\\$%]/);
      const program = exec.split(' ')[0] ?? '';
      expect(isAbsolute(program)).toBe(true);
      expect(existsSync(program)).toBe(true);
    }
  });

  it.each(services.map((s) => [s.file.split('/').at(-1), s] as const))(
    '%s: its ExecStart, run as its User in its kind of install, succeeds and writes only to the NAS',
    async (_name, service) => {
      const settings = service.sections.Service ?? {};
      const argv = (settings.ExecStart ?? '').split(' ');
      const drill = argv.includes('drill');
      const written = () =>
        readdirSync(join(store, db), { recursive: true })
          .map(String)
          .filter((f) => f.endsWith(drill ? '.verify.json' : '.manifest.json'));
      const before = written();
      // WorkingDirectory names the install; here the read-only copy stands in for it. No libpq
      // variables: the connection is the one config/nas.yml gives, as under systemd.
      const result = await runAs(settings.User ?? '', argv, { cwd: install, env: serviceEnv() });
      expect(result.code, result.stderr).toBe(0);

      const added = written().filter((f) => !before.includes(f));
      expect(added).toHaveLength(1);
      if (drill) {
        const report = JSON.parse(readFileSync(join(store, db, added[0] as string), 'utf8'));
        expect(report).toMatchObject({ passed: true });
      }
      expect(snapshot(install)).toEqual(installed);
    },
  );
});
