/**
 * The wal-* commands' own bundle (dist/wal/, WAL in cli/bundle.mjs): what PostgreSQL's calls that
 * reach Node, and the prefetcher a recovery waits for, load instead of the CLI's front and its
 * work, with a V8 code cache beside each of its two files.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBucket } from '../../support/s3.js';
import { tempDir } from '../../support/temp.js';
import { segmentBytes } from '../../support/wal-bytes.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const SEGMENT = '000000010000000000000001';

let install: string;
let data: string;
let stores: string[];
const bytes = segmentBytes();

function pgbp(args: readonly string[]) {
  return spawnSync(process.execPath, [join(install, 'cli/pgbp.cjs'), ...args], {
    cwd: data,
    encoding: 'utf8',
  });
}

/** What a recovery's calls answer from each store: the segment (and its bytes), a history file. */
function answers() {
  return stores.map((store) => {
    rmSync(join(data, 'pg_wal/RECOVERYXLOG'), { force: true });
    const fetched = pgbp(['wal-fetch', SEGMENT, 'pg_wal/RECOVERYXLOG', '--store', store]);
    const history = pgbp(['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY', '--store', store]);
    return {
      store,
      fetched: [fetched.status, fetched.stderr],
      same: readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(bytes),
      history: [history.status, history.stderr],
    };
  });
}

/** In a Node of its own (V8 compiles a source it has seen before from memory): whether each cache fits. */
function cachesTaken(store: string): string {
  const script = `
    const wal = require(process.argv[1]).loadWal(process.argv[2], process.argv[3]);
    const deps = { env: process.env, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr };
    wal.runWalCommand(['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY', '--store', process.argv[4]], deps)
      .then(() => process.stdout.write(JSON.stringify([wal.cacheRejected, wal.packages()?.cacheRejected ?? null])));
  `;
  const run = spawnSync(
    process.execPath,
    [
      '-e',
      script,
      join(install, 'cli/front.cjs'),
      join(install, 'dist/wal/wal-main.cjs'),
      join(install, 'dist/wal/aws-packages.cjs'),
      store,
    ],
    { cwd: data, encoding: 'utf8' },
  );
  return run.stdout;
}

beforeAll(async () => {
  // An install as `npm ci` leaves it, times kept (the caches are made for their own files).
  install = tempDir('pgbp-wal-bundle-');
  for (const part of ['package.json', 'cli', 'dist']) {
    cpSync(join(ROOT, part), join(install, part), { recursive: true, preserveTimestamps: true });
  }
  const dir = join(install, 'store');
  mkdirSync(dir);
  stores = [`file://${dir}`, `s3://${await createBucket()}/wal`];
  data = join(install, 'data');
  mkdirSync(join(data, 'pg_wal'), { recursive: true });
  writeFileSync(join(data, 'pg_wal', SEGMENT), bytes);
  for (const store of stores) {
    const pushed = pgbp(['wal-push', `pg_wal/${SEGMENT}`, '--store', store]);
    expect(pushed.status, pushed.stderr).toBe(0);
  }
});

describe('the wal-* commands from their own bundle', () => {
  it('answer alike with code caches that fit, that do not fit (truncated, not a cache), and none', () => {
    const expected = stores.map((store) => ({ store, fetched: [0, ''], same: true, history: [1, ''] }));
    // The caches fit the build's Node: a directory store loads no AWS package, an S3 store does.
    expect(cachesTaken(stores[0] as string)).toBe('[false,null]');
    expect(cachesTaken(stores[1] as string)).toBe('[false,false]');
    expect(answers()).toEqual(expected);
    const caches = ['dist/wal/wal-main.cjs.cache', 'dist/wal/aws-packages.cjs.cache'].map((f) =>
      join(install, f),
    );
    const made = caches.map((cache) => readFileSync(cache));
    for (const damage of [
      (cache: Buffer) => cache.subarray(0, cache.length - 1000),
      (cache: Buffer) => Buffer.concat([cache.subarray(0, 16), Buffer.from('not a cache')]),
      () => Buffer.from('not a cache'),
    ]) {
      caches.forEach((cache, i) => {
        writeFileSync(cache, damage(made[i] as Buffer));
      });
      expect(cachesTaken(stores[1] as string)).not.toBe('[false,false]');
      expect(answers()).toEqual(expected);
    }
    for (const cache of caches) rmSync(cache);
    expect(answers()).toEqual(expected);
  });

  it('run without the CLI front', () => {
    // A front that cannot load: only a line the wal bundle does not run reaches it.
    writeFileSync(join(install, 'dist/cli/main.cjs'), 'throw new Error("the front was loaded");\n');
    expect(answers()).toEqual(
      stores.map((store) => ({ store, fetched: [0, ''], same: true, history: [1, ''] })),
    );
    const help = pgbp(['wal-fetch', '--help']);
    expect(help.stderr).toContain('the front was loaded');
    // A restore_command that could not run aborts recovery: never exit 1, "not archived".
    expect(help.status).toBe(126);
  });
});
