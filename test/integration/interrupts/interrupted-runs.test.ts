import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.js';
import { scratchDatabaseName, scratchSuffix } from '../../../lib/domain/restore-checks.js';
import { storeStatus } from '../../../lib/monitor/staleness.js';
import { runRetention } from '../../../lib/retention/run.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { PGBP, runCli } from '../../support/cli.js';
import { createDatabase, dropDatabase, listDatabases, uniqueDbName } from '../../support/pg.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { processes, processesMentioning, treeOf, waitUntil } from '../../support/processes.js';
import { createBucket, inProgressUploads, listKeys } from '../../support/s3.js';
import { dump } from '../restore/fixture.js';

/**
 * pgbp interrupted as `timeout`, systemd or Fargate's StopTask would (SIGTERM), and killed
 * outright (SIGKILL of the whole tree). The runs are held mid-stream by client tools on the PATH
 * that do the real work and then keep their output open, as a big database still being dumped
 * would: each test waits for the partial file or upload to exist before it signals.
 */

const work = mkdtempSync(join(tmpdir(), 'pgbp-interrupts-'));
// A grace of one minute, and the clock of retention two minutes on: old enough, yet the good
// backup beside the debris is still fresh (retention of a stale database deletes nothing).
const config = parseConfig(
  { stage: 'local', store: 'file:///unused', defaults: { retention: { debrisGrace: '1m' } } },
  'interrupt tests',
);
/** A state machine run starts its task processes from a bundle, built first: slow on a busy machine. */
const STARTUP_MS = 150_000;
const later = () => new Date(Date.now() + 2 * 60_000);
let database: string;

function realTool(tool: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error(`${tool} is not on the PATH`);
  return found;
}

/**
 * A directory holding `tool`: the real one does its work, then (unless asked its version) writes
 * `extraBytes` more and holds its output open in a sleep whose duration marks it. Returns the
 * PATH to run with and the marker.
 */
function slowTool(tool: 'pg_dump' | 'pg_restore', extraBytes = 0): { path: string; marker: string } {
  const dir = mkdtempSync(join(work, `${tool}-`));
  const marker = `sleep ${randomInt(700_000, 900_000)}`;
  const script = [
    '#!/bin/sh',
    `case " $* " in *" --version "*) exec ${realTool(tool)} "$@";; esac`,
    `${realTool(tool)} "$@" || exit $?`,
    extraBytes > 0 ? `head -c ${extraBytes} /dev/urandom` : '',
    marker,
    '',
  ].join('\n');
  writeFileSync(join(dir, tool), script);
  chmodSync(join(dir, tool), 0o755);
  return { path: `${dir}:${process.env.PATH}`, marker };
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** Every run a test started: one that failed before its signal is stopped after the tests. */
const started: ChildProcess[] = [];

/** Starts the real `pgbp` command in a child process. */
function startPgbp(args: readonly string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, [PGBP, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) => child.once('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, exited };
}

/** Every file under a directory, hidden ones included. */
function filesUnder(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

function partialFiles(dir: string): string[] {
  return filesUnder(dir).filter((f) => /\/\.[^/]+\.dump\.partial-[0-9a-f]+$/.test(f));
}

/** The processes of a run, as they were: after it, none of them may still be there. */
function survivors(tree: readonly { pid: number; command: string }[]): string[] {
  const live = new Map(processes().map((p) => [p.pid, p.command]));
  return tree.filter((p) => live.get(p.pid) === p.command).map((p) => `${p.pid} ${p.command}`);
}

async function noneLeft(tree: readonly { pid: number; command: string }[], marker: string): Promise<void> {
  expect(tree.length, 'the run had children to stop').toBeGreaterThan(2);
  await waitUntil(
    () => survivors(tree).length === 0 && processesMentioning(marker).length === 0,
    'every process of the run has gone',
    20_000,
  ).catch(() => {
    throw new Error(
      `left running: ${[...survivors(tree), ...processesMentioning(marker).map((p) => p.command)]}`,
    );
  });
  expect(processesMentioning(database)).toEqual([]);
}

async function listUploads(store: S3Store): Promise<{ key: string; initiated: Date }[]> {
  const found: { key: string; initiated: Date }[] = [];
  for await (const u of store.incompleteUploads('')) found.push(u);
  return found;
}

function killTree(tree: readonly { pid: number }[]): void {
  for (const p of tree) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
  }
}

beforeAll(async () => {
  database = uniqueDbName('interrupted');
  await createDatabase(
    database,
    'create table t as select g as id, md5(g::text) as v from generate_series(1, 5000) g',
  );
});

afterAll(async () => {
  for (const child of started) if (child.exitCode === null && child.pid) killTree(treeOf(child.pid));
  await dropDatabase(database);
  rmSync(work, { recursive: true, force: true });
});

describe('pgbp dump interrupted', () => {
  it('by SIGTERM into a directory: exits 143 saying so, and leaves no process and no file', async () => {
    const dir = join(work, 'dump-term');
    const shim = slowTool('pg_dump');
    const run = startPgbp(['dump', '--database', database, '--store', `file://${dir}`, '--json'], {
      PATH: shim.path,
    });
    await waitUntil(
      () => processesMentioning(shim.marker).length > 0 && partialFiles(dir).length > 0,
      'the dump is writing its temporary file',
    );
    const tree = treeOf(run.child.pid as number);
    run.child.kill('SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(143);
    expect(exit.stderr.trim().split('\n')).toEqual([
      `pgbp: dump of ${database} interrupted by SIGTERM: its processes were stopped and what it had begun was removed`,
    ]);
    await noneLeft(tree, shim.marker);
    expect(filesUnder(dir)).toEqual([]);
  });

  it('by SIGINT into S3: aborts the upload, and leaves no object and no process', async () => {
    const bucket = await createBucket();
    const shim = slowTool('pg_dump', 40 * 1024 * 1024);
    const run = startPgbp(['dump', '--database', database, '--store', `s3://${bucket}/b`, '--json'], {
      PATH: shim.path,
    });
    await waitUntil(
      async () => processesMentioning(shim.marker).length > 0 && (await inProgressUploads(bucket)) > 0,
      'the dump is uploading',
    );
    const tree = treeOf(run.child.pid as number);
    run.child.kill('SIGINT');
    const exit = await run.exited;
    expect(exit.code).toBe(130);
    expect(exit.stderr).toMatch(/^pgbp: dump of \S+ interrupted by SIGINT: /);
    await noneLeft(tree, shim.marker);
    expect(await inProgressUploads(bucket)).toBe(0);
    expect(await listKeys(bucket)).toEqual([]);
  });

  it('by SIGKILL: the temporary file is debris that status counts and retention removes after the grace', async () => {
    const dir = join(work, 'dump-kill');
    const store = new FileStore(dir);
    const good = await dump(store, database, { at: new Date(Date.now() - 3_600_000) });
    const shim = slowTool('pg_dump');
    const run = startPgbp(['dump', '--database', database, '--store', `file://${dir}`, '--json'], {
      PATH: shim.path,
    });
    await waitUntil(
      () => processesMentioning(shim.marker).length > 0 && partialFiles(dir).length > 0,
      'the dump is writing its temporary file',
    );
    const tree = treeOf(run.child.pid as number);
    killTree(tree);
    await run.exited;
    await noneLeft(tree, shim.marker);
    const [partial] = partialFiles(dir);
    expect(partial).toBeDefined();

    const status = await runCli(['status', '--store', `file://${dir}`, '--json'], { cwd: work });
    const seen = JSON.parse(status.stdout) as { databases: { database: string; debris: number }[] };
    expect(seen.databases).toEqual([expect.objectContaining({ database, debris: 1 })]);

    // The debris's age is by the file system's clock, which a faked process clock does not reach.
    const written = statSync(partial as string).mtime.getTime();
    const young = await runRetention({ store, config, database, now: new Date(written + 1000) });
    expect(young.debris.kept).toEqual([expect.objectContaining({ reason: 'grace' })]);
    expect(partialFiles(dir)).toHaveLength(1);
    const old = await runRetention({ store, config, database, now: new Date(written + 2 * 60_000) });
    expect(old.debris.remove).toHaveLength(1);
    expect(partialFiles(dir)).toEqual([]);
    expect(await store.head(good.key)).toBeDefined();
  });

  it('by SIGKILL into S3: the open upload is debris that status counts and retention aborts after the grace', async () => {
    const bucket = await createBucket();
    const store = new S3Store(bucket, 'b');
    const good = await dump(store, database, { at: new Date(Date.now() - 3_600_000) });
    const shim = slowTool('pg_dump', 40 * 1024 * 1024);
    const run = startPgbp(['dump', '--database', database, '--store', `s3://${bucket}/b`, '--json'], {
      PATH: shim.path,
    });
    await waitUntil(
      async () => processesMentioning(shim.marker).length > 0 && (await inProgressUploads(bucket)) > 0,
      'the dump is uploading',
    );
    const tree = treeOf(run.child.pid as number);
    killTree(tree);
    await run.exited;
    await noneLeft(tree, shim.marker);
    expect(await inProgressUploads(bucket)).toBe(1);

    const status = await storeStatus({ store, config, now: new Date(), databases: [database] });
    expect(status.databases).toEqual([expect.objectContaining({ database, debris: 1 })]);
    // The clock from the upload's own start (a local endpoint may report any start time).
    const [upload] = await listUploads(store);
    const initiated = (upload as { initiated: Date }).initiated.getTime();
    const young = await runRetention({ store, config, database, now: new Date(initiated + 30_000) });
    expect(young.debris.kept).toEqual([expect.objectContaining({ reason: 'grace' })]);
    expect(await inProgressUploads(bucket)).toBe(1);
    const old = await runRetention({ store, config, database, now: new Date(initiated + 2 * 60_000) });
    expect(old.debris.remove).toHaveLength(1);
    expect(await inProgressUploads(bucket)).toBe(0);
    expect(await store.head(good.key)).toBeDefined();
  }, 240_000);
});

describe('pgbp verify interrupted by SIGTERM', () => {
  it('drops its scratch database, writes no report, and leaves no process', async () => {
    const dir = join(work, 'verify-term');
    const store = new FileStore(dir);
    await dump(store, database);
    const before = filesUnder(dir).sort();
    const sample = scratchDatabaseName(database, scratchSuffix(new Date(), '00000000'));
    const scratchPrefix = sample.slice(0, sample.lastIndexOf('_') + 1);
    const shim = slowTool('pg_restore');
    // Restored on the shared server, where the test can watch the scratch database appear.
    const configFile = await writeConfigFile(mkdtempSync(join(work, 'config-')), {
      stage: 'local',
      store: `file://${dir}`,
      drill: { target: 'source' },
    });
    const run = startPgbp(['verify', 'latest', '--database', database, '--config', configFile, '--json'], {
      PATH: shim.path,
    });
    await waitUntil(
      async () =>
        processesMentioning(shim.marker).length > 0 && (await listDatabases(scratchPrefix)).length > 0,
      'the verify has restored into its scratch database',
    );
    const tree = treeOf(run.child.pid as number);
    run.child.kill('SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(143);
    expect(exit.stderr.trim().split('\n')).toEqual([
      `pgbp: verify of ${database} interrupted by SIGTERM: its processes were stopped and what it had begun was removed`,
    ]);
    await noneLeft(tree, shim.marker);
    expect(await listDatabases(scratchPrefix)).toEqual([]);
    expect(filesUnder(dir).sort()).toEqual(before);
  });
});

describe('pgbp backup (the local runner) interrupted', () => {
  async function startBackup(label: string) {
    const dir = join(work, label);
    const good = await dump(new FileStore(dir), database, { at: new Date(Date.now() - 3_600_000) });
    const before = filesUnder(dir);
    const configFile = await writeConfigFile(mkdtempSync(join(work, 'config-')), {
      stage: 'local',
      store: `file://${dir}`,
      databases: [{ name: database }],
    });
    const shim = slowTool('pg_dump');
    const run = startPgbp(['backup', '--config', configFile, '--json'], { PATH: shim.path });
    await waitUntil(
      () => processesMentioning(shim.marker).length > 0 && partialFiles(dir).length > 0,
      'the dump task is writing its temporary file',
      STARTUP_MS,
    );
    return { dir, run, shim, configFile, good, before };
  }

  it('by SIGTERM: stops the task and its processes, and leaves no file and no manifest', async () => {
    const { dir, run, shim, before } = await startBackup('backup-term');
    const tree = treeOf(run.child.pid as number);
    run.child.kill('SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(143);
    expect(exit.stderr.trim().split('\n').at(-1)).toBe(
      'pgbp: backup interrupted by SIGTERM: its processes were stopped and what it had begun was removed',
    );
    await noneLeft(tree, shim.marker);
    expect(filesUnder(dir).sort()).toEqual(before.sort());
  }, 240_000);

  it('by SIGKILL: leaves debris that status counts and retention removes after the grace', async () => {
    const { dir, run, shim, configFile, good, before } = await startBackup('backup-kill');
    const tree = treeOf(run.child.pid as number);
    killTree(tree);
    await run.exited;
    await noneLeft(tree, shim.marker);
    expect(partialFiles(dir)).toHaveLength(1);

    const status = await runCli(['status', '--config', configFile, '--json'], { cwd: work });
    expect(JSON.parse(status.stdout).databases).toEqual([expect.objectContaining({ database, debris: 1 })]);
    const store = new FileStore(dir);
    const retention = await runRetention({ store, config, database, now: later() });
    expect(retention.debris.remove).toHaveLength(1);
    expect(filesUnder(dir).sort()).toEqual(before.sort());
    expect(await store.head(good.key)).toBeDefined();
  }, 240_000);
});
