/**
 * The launcher (cli/pgbp) answering "not archived" from the prefetcher's records
 * (lib/wal/absent.ts): only from a fresh one, once, and never where a lookup failed. The
 * launcher is given a node that does not exist (PGBP_NODE), so any call it leaves to the CLI
 * fails with 127, and a clock of the test's (`date` on its PATH).
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outputOf } from '../../../lib/platform/processes.js';
import { absentRecord, askedRecord } from '../../../lib/wal/absent.js';
import { archiveTag, prefetchDir } from '../../../lib/wal/spool.js';
import { PGBP_LAUNCHER, runCli } from '../../support/cli.js';
import { waitFor } from '../../support/wal.js';
import { segmentBytes } from '../../support/wal-bytes.js';

const NO_NODE = '/nonexistent/node';
const names = ['000000010000000000000001', '000000010000000000000002'];
const PAST_END = '000000010000000000000003';
/** The launcher's "now" (epoch seconds), unless a test says otherwise. */
const NOW = 1_900_000_000;

let work: string;
let url: string;
let clock: string;

/** A data directory as a server recovering from a base backup has it, as far as pgbp looks. */
function recovering(): string {
  const data = mkdtempSync(join(work, 'data-'));
  mkdirSync(join(data, 'pg_wal'));
  writeFileSync(join(data, 'postmaster.pid'), '');
  writeFileSync(join(data, 'recovery.signal'), '');
  writeFileSync(
    join(data, 'backup_label'),
    `START WAL LOCATION: 0/1000028 (file ${names[0]})\nCHECKPOINT LOCATION: 0/1000060\n`,
  );
  return data;
}

function fetchAs(data: string, name: string, store: string, options: { node?: string; now?: number } = {}) {
  return outputOf(
    spawn(PGBP_LAUNCHER, ['wal-fetch', name, 'pg_wal/RECOVERYXLOG', '--store', store], {
      cwd: data,
      env: {
        ...process.env,
        PGBP_NODE: options.node ?? NO_NODE,
        PATH: `${clock}:${process.env.PATH}`,
        PGBP_TEST_NOW: String(options.now ?? NOW),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** The record the prefetcher writes: the archive, asked at `at` (epoch seconds), lacks `name`. */
function record(data: string, store: string, name: string, at: string | number): string {
  const dir = prefetchDir(data, archiveTag(data, { store }));
  mkdirSync(dir, { recursive: true });
  writeFileSync(absentRecord(dir, name), `${at}\n`);
  return dir;
}

/** When the lookup of a record of the prefetcher's was made (epoch seconds), if there is one. */
function recordedAt(dir: string, name: string): number | undefined {
  const text = existsSync(absentRecord(dir, name)) && readFileSync(absentRecord(dir, name), 'utf8');
  return text && /^[1-9][0-9]*\n$/.test(text) ? Number(text) : undefined;
}

async function ended(data: string, dir: string): Promise<void> {
  rmSync(join(data, 'recovery.signal'), { force: true });
  await waitFor('the prefetcher to exit', () => !existsSync(join(dir, '.prefetcher')), 30_000);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pgbp-absent-'));
  url = `file://${join(work, 'store')}`;
  mkdirSync(join(work, 'store'));
  clock = join(work, 'clock');
  mkdirSync(clock);
  writeFileSync(join(clock, 'date'), '#!/bin/sh\nprintf "%s\\n" "$PGBP_TEST_NOW"\n', { mode: 0o755 });
  const pusher = mkdtempSync(join(work, 'pusher-'));
  mkdirSync(join(pusher, 'pg_wal'));
  for (const name of names) {
    writeFileSync(join(pusher, 'pg_wal', name), segmentBytes());
    const pushed = await runCli(['wal-push', join('pg_wal', name), '--store', url], { cwd: pusher });
    expect(pushed.code, pushed.stderr).toBe(0);
  }
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('"not archived" through the launcher', () => {
  it('answers exit 1 from a record at most 2 s old, once, for a segment or a history file', async () => {
    for (const name of [PAST_END, '00000002.history']) {
      for (const age of [0, 2]) {
        const data = recovering();
        const dir = record(data, url, name, NOW - age);
        expect(await fetchAs(data, name, url), `${name}, ${age} s`).toMatchObject({ code: 1, stderr: '' });
        expect(existsSync(join(data, 'pg_wal/RECOVERYXLOG'))).toBe(false);
        // Used up: the next question goes to the CLI, unless the prefetcher has asked again.
        expect(existsSync(askedRecord(dir, name))).toBe(true);
        expect((await fetchAs(data, name, url)).code, `${name} again`).toBe(127);
      }
    }
  });

  it('leaves a stale, future or unreadable record, and any other line, to the CLI', async () => {
    for (const at of [NOW - 3, NOW - 600, NOW + 1, '', 'x1900000000', `0${NOW}`, `${NOW} 1`]) {
      const data = recovering();
      record(data, url, PAST_END, at);
      expect((await fetchAs(data, PAST_END, url)).code, `recorded ${at}`).toBe(127);
    }
    // Another archive's record says nothing of this one.
    const data = recovering();
    record(data, `${url}-elsewhere`, PAST_END, NOW);
    expect((await fetchAs(data, PAST_END, url)).code).toBe(127);
    // Nor does a record answer a destination outside pg_wal, or a name it does not know.
    const dir = record(data, url, PAST_END, NOW);
    const elsewhere = spawn(PGBP_LAUNCHER, ['wal-fetch', PAST_END, join(work, 'X'), '--store', url], {
      cwd: data,
      env: {
        ...process.env,
        PGBP_NODE: NO_NODE,
        PATH: `${clock}:${process.env.PATH}`,
        PGBP_TEST_NOW: String(NOW),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect((await outputOf(elsewhere)).code).toBe(127);
    expect(existsSync(absentRecord(dir, PAST_END))).toBe(true);
    record(data, url, '0000000G.history', NOW);
    expect((await fetchAs(data, '0000000G.history', url)).code).toBe(127);
  });

  it('answers from the records the prefetcher keeps: the segment past the end, the history files', async () => {
    const data = recovering();
    const dir = prefetchDir(data, archiveTag(data, { store: url }));
    try {
      // The first question of a recovery from a base backup starts the prefetcher; the CLI answers it.
      expect(await fetchAs(data, '00000002.history', url, { node: process.execPath })).toMatchObject({
        code: 1,
        stderr: '',
      });
      // Timeline 1 has no history file, but a promotion asks for its new timeline's parent's.
      for (const name of [PAST_END, '00000002.history', '00000001.history']) {
        const at = await waitFor(`the record of ${name}`, () => recordedAt(dir, name), 30_000);
        // The launcher's clock as late as a record read now may be: the prefetcher renews it meanwhile.
        expect(await fetchAs(data, name, url, { now: at + 2 }), name).toMatchObject({ code: 1, stderr: '' });
        // Taken, it is asked of the archive again (PostgreSQL asks twice in a row past the end).
        const again = await waitFor(`${name} asked again`, () => recordedAt(dir, name), 30_000);
        expect(await fetchAs(data, name, url, { now: again + 2 }), name).toMatchObject({
          code: 1,
          stderr: '',
        });
      }
      // What the archive holds is never recorded as absent.
      for (const name of names) expect(existsSync(absentRecord(dir, name)), name).toBe(false);
    } finally {
      await ended(data, dir);
    }
  });

  it('never records "not archived" from a store that cannot answer: the CLI says why', async () => {
    // Not an archive (a store not mounted, a wrong prefix): empty, which is not "not archived".
    const empty = `file://${mkdtempSync(join(work, 'unmounted-'))}`;
    const data = recovering();
    // Records of an earlier lookup that answered, which the failing ones must take back.
    const dir = record(data, empty, '00000002.history', NOW);
    record(data, empty, names[0] as string, NOW);
    try {
      const first = await fetchAs(data, '00000001.history', empty, { node: process.execPath });
      expect(first.code).toBe(126);
      expect(first.stderr).toContain('WalArchiveUnavailableError');
      await waitFor(
        'the records taken back',
        () =>
          !existsSync(absentRecord(dir, '00000002.history')) &&
          !existsSync(absentRecord(dir, names[0] as string)),
        30_000,
      );
      expect(existsSync(absentRecord(dir, '00000001.history'))).toBe(false);
      for (const name of ['00000002.history', names[0] as string]) {
        expect((await fetchAs(data, name, empty)).code, name).toBe(127);
        const cli = await fetchAs(data, name, empty, { node: process.execPath });
        expect(cli.code, name).toBe(126);
        expect(cli.stderr).toContain('WalArchiveUnavailableError');
      }
    } finally {
      await ended(data, dir);
    }
  });
});
