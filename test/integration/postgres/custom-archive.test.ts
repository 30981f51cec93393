import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OffsetCollector,
  type OffsetPlan,
  planOffsets,
  writeOffsets,
} from '../../../lib/postgres/archive-offsets.js';
import {
  K_OFFSET_NO_DATA,
  K_OFFSET_POS_NOT_SET,
  K_OFFSET_POS_SET,
  readToc,
} from '../../../lib/postgres/custom-archive.js';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { snapshot } from '../../support/compare.js';
import { dropDatabase, uniqueDbName } from '../../support/pg.js';
import { awkwardDatabase, dump, restoreDeps } from '../restore/fixture.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'pgbp-archive-'));
const created: string[] = [];
let source: string;

/** pg_dump writing to a pipe (no offsets) and to a file (offsets filled in by pg_dump itself). */
async function dumps(compress: number): Promise<{ piped: string; written: string }> {
  const piped = join(work, `piped-z${compress}.dump`);
  const written = join(work, `written-z${compress}.dump`);
  // `| cat`: stdout redirected to a file is seekable, and pg_dump would fill the offsets in itself.
  await run('bash', ['-o', 'pipefail', '-c', `pg_dump -Fc -Z${compress} '${source}' | cat > '${piped}'`]);
  await run('pg_dump', ['-Fc', `-Z${compress}`, '-f', written, source]);
  return { piped, written };
}

function offsetsOf(file: string): Map<number, [number, number]> {
  const toc = readToc(readFileSync(file));
  return new Map(
    toc.entries.map((e) => [e.dumpId, [e.dataState, e.dataState === K_OFFSET_POS_SET ? e.offset : 0]]),
  );
}

function planOf(bytes: Buffer, chunkSize = bytes.length): OffsetPlan {
  const collector = new OffsetCollector();
  for (let i = 0; i < bytes.length; i += chunkSize) collector.push(bytes.subarray(i, i + chunkSize));
  return collector.finish();
}

async function list(file: string): Promise<string> {
  return (await run('pg_restore', ['--list', file])).stdout;
}

beforeAll(async () => {
  source = await awkwardDatabase('archive_src');
  created.push(source);
});

afterAll(async () => {
  for (const db of created) await dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

describe('filling in the data offsets of a piped custom archive', () => {
  it.each([0, 6])('gives the offsets pg_dump writes itself when it can seek (-Z%i)', async (compress) => {
    const { piped, written } = await dumps(compress);
    const before = offsetsOf(piped);
    expect([...before.values()].filter(([state]) => state === K_OFFSET_POS_NOT_SET).length).toBeGreaterThan(
      5,
    );
    expect([...before.values()].some(([state]) => state === K_OFFSET_POS_SET)).toBe(false);

    const plan = await planOffsets(piped);
    if (plan.kind !== 'plan') throw new Error(plan.reason);
    expect(plan.toc.version).toMatch(/^1\.1[456]\./);
    expect(await writeOffsets(piped, plan)).toBe(true);

    const after = offsetsOf(piped);
    expect(after).toEqual(offsetsOf(written));
    expect([...after.values()].some(([state]) => state === K_OFFSET_NO_DATA)).toBe(true);
    // The large objects' block too, not only tables'.
    const blobs = readToc(readFileSync(piped)).entries.find((e) => e.desc === 'BLOBS');
    expect(blobs?.dataState).toBe(K_OFFSET_POS_SET);
    // Byte for byte the file pg_dump writes, but for the creation time in the header.
    const a = readFileSync(piped);
    const b = readFileSync(written);
    expect(a.length).toBe(b.length);
    const differ = [...a.keys()].filter((k) => a[k] !== b[k]);
    expect(differ.every((k) => k < 64)).toBe(true);
  });

  it('leaves an archive pg_dump wrote to a file as it is', async () => {
    const { written } = await dumps(0);
    const plan = await planOffsets(written);
    expect(plan).toMatchObject({ kind: 'plan', filled: 0 });
  });

  it('reads the same offsets whatever the size of the chunks the archive arrives in', async () => {
    const { piped } = await dumps(0);
    const bytes = readFileSync(piped);
    const whole = planOf(bytes);
    if (whole.kind !== 'plan') throw new Error(whole.reason);
    for (const size of [1, 3, 7, 4096]) {
      const plan = planOf(bytes, size);
      if (plan.kind !== 'plan') throw new Error(plan.reason);
      expect(plan.patched.equals(whole.patched)).toBe(true);
    }
  });

  it('keeps the archive listing pg_restore --list shows', async () => {
    const { piped } = await dumps(0);
    const patched = join(work, 'listed.dump');
    copyFileSync(piped, patched);
    const plan = await planOffsets(patched);
    if (plan.kind !== 'plan') throw new Error(plan.reason);
    await writeOffsets(patched, plan);
    expect(await list(patched)).toBe(await list(piped));
  });

  it('refuses what it does not know, and says why', async () => {
    const { piped } = await dumps(0);
    const bytes = readFileSync(piped);
    const plan = planOf(bytes);
    if (plan.kind !== 'plan') throw new Error(plan.reason);
    const firstBlock = plan.toc.end;
    const changed = (at: number, value: number) => {
      const copy = Buffer.from(bytes);
      copy[at] = value;
      return copy;
    };
    expect(planOf(changed(6, 13))).toEqual({ kind: 'unsupported', reason: 'archive version 1.13.0' });
    expect(planOf(changed(firstBlock, 2))).toMatchObject({
      kind: 'unsupported',
      reason: expect.stringMatching(/unknown data block type 2/),
    });
    // The block's dumpId (sign byte, then little-endian): one no TOC entry has.
    const stray = Buffer.from(bytes);
    stray.writeUInt32LE(999_999, firstBlock + 2);
    expect(planOf(stray)).toMatchObject({
      kind: 'unsupported',
      reason: expect.stringMatching(/not in the TOC/),
    });
    expect(planOf(bytes.subarray(0, bytes.length - 3))).toMatchObject({
      kind: 'unsupported',
      reason: expect.stringMatching(/ends inside a data block/),
    });
    expect(planOf(bytes.subarray(0, firstBlock - 10))).toMatchObject({
      kind: 'unsupported',
      reason: expect.stringMatching(/ends inside its table of contents/),
    });
    expect(planOf(Buffer.from('-- PostgreSQL database dump\n'))).toEqual({
      kind: 'unsupported',
      reason: 'no PGDMP magic',
    });
  });

  it('writes nothing over a file that no longer starts with the bytes it read', async () => {
    const { piped } = await dumps(0);
    const plan = await planOffsets(piped);
    if (plan.kind !== 'plan') throw new Error(plan.reason);
    const other = join(work, 'other.dump');
    const bytes = readFileSync(piped);
    bytes[40] = (bytes[40] ?? 0) ^ 1;
    writeFileSync(other, bytes);
    expect(await writeOffsets(other, plan)).toBe(false);
    expect(readFileSync(other).equals(bytes)).toBe(true);
  });
});

describe('a restore with two jobs from a spool with its offsets filled in', () => {
  it('restores the awkward fixture equal to the source, with no warning', async () => {
    const store = new FileStore(join(work, 'nas'));
    const manifest = await dump(store, source);
    const into = uniqueDbName('archive_jobs');
    created.push(into);
    const report = await runRestore(
      parseRestoreRequest({ database: source, backup: manifest.id, targetDatabase: into, jobs: 2 }),
      restoreDeps(store, { policy: { spoolDir: work, spoolHeadroom: 0 } }),
    );
    expect(report).toMatchObject({ jobs: 2, spooled: true, passed: true, warnings: [] });
    const [before, after] = await Promise.all([snapshot(source), snapshot(into)]);
    expect(after.schema).toBe(before.schema);
    expect(after.tables).toEqual(before.tables);
    expect(after.largeObjects).toEqual(before.largeObjects);
    expect(after.sequences).toEqual(before.sequences);
  });
});
