/**
 * The `pgbp` launcher (cli/pgbp, what archive_command and restore_command run): the calls it
 * answers without starting Node, and that everything else, or anything in doubt, reaches the CLI.
 * A launcher given a node that does not exist (PGBP_NODE) answers only what it answers itself;
 * any call it leaves to the CLI then fails with 127, as a command that cannot be found.
 */

import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outputOf } from '../../../lib/platform/processes.js';
import { cksumOf } from '../../../lib/wal/cksum.js';
import {
  type ArchiveOptions,
  archiveTag,
  entryName,
  prefetchDir,
  pushedDir,
  sha256Of,
  spool,
} from '../../../lib/wal/spool.js';
import { PGBP_LAUNCHER, runCli } from '../../support/cli.js';
import { waitFor } from '../../support/wal.js';
import { segmentBytes } from '../../support/wal-bytes.js';

const NO_NODE = '/nonexistent/node';
const names = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003'];

let work: string;
let url: string;
const segments = new Map<string, Buffer>();

function dataDir(): string {
  const dir = mkdtempSync(join(work, 'data-'));
  mkdirSync(join(dir, 'pg_wal'));
  return dir;
}

function launch(args: readonly string[], cwd: string, node: string = process.execPath) {
  return outputOf(
    spawn(PGBP_LAUNCHER, args, {
      cwd,
      env: { ...process.env, PGBP_NODE: node },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Spools `name` as the prefetcher does: verified bytes under their digest and their cksum. */
async function spoolAs(data: string, options: ArchiveOptions, name: string, bytes = segments.get(name)) {
  const dir = prefetchDir(data, archiveTag(data, options));
  await spool(
    dir,
    name,
    sha256Of(bytes as Buffer),
    bytes as Buffer,
    await cksumOf(bytes as Buffer, process.env),
  );
  return dir;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pgbp-launcher-'));
  url = `file://${join(work, 'store')}`;
  mkdirSync(join(work, 'store'));
  const pusher = dataDir();
  for (const name of names) {
    segments.set(name, segmentBytes());
    writeFileSync(join(pusher, 'pg_wal', name), segments.get(name) as Buffer);
    const pushed = await runCli(['wal-push', join('pg_wal', name), '--store', url], { cwd: pusher });
    expect(pushed.code, pushed.stderr).toBe(0);
  }
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('wal-fetch through the launcher', () => {
  it('hands over a spooled segment itself, for each way the line names the archive', async () => {
    const name = names[0] as string;
    const lines: { args: string[]; options: (data: string) => ArchiveOptions }[] = [
      { args: ['--store', url], options: () => ({ store: url }) },
      { args: [`--store=${url}`, '--cluster', 'main'], options: () => ({ store: url, cluster: 'main' }) },
      { args: ['--config', join(work, 'pgbp.yml')], options: () => ({ configFile: join(work, 'pgbp.yml') }) },
      { args: ['--config', './pgbp.yml'], options: (data) => ({ configFile: join(data, 'pgbp.yml') }) },
    ];
    writeFileSync(join(work, 'pgbp.yml'), `stage: local\nstore: ${url}\n`);
    for (const line of lines) {
      const data = dataDir();
      writeFileSync(join(data, 'pgbp.yml'), `stage: local\nstore: ${url}\n`);
      const dir = await spoolAs(data, line.options(data), name);
      const result = await launch(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', ...line.args], data, NO_NODE);
      expect(result.code, `${line.args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(segments.get(name) as Buffer)).toBe(true);
      expect(readdirSync(dir).filter((n) => n.startsWith(name))).toEqual([]);
      // Where recovery is, for the prefetcher to keep ahead of.
      expect(readFileSync(join(dir, '.position'), 'utf8')).toBe(name);
    }
  });

  it('leaves the same entries to the Node CLI (node cli/pgbp.cjs) too, which verifies their SHA-256', async () => {
    const name = names[0] as string;
    const data = dataDir();
    const dir = await spoolAs(data, { store: url }, name);
    const result = await runCli(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', '--store', url], { cwd: data });
    expect(result.code, result.stderr).toBe(0);
    expect(readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(segments.get(name) as Buffer)).toBe(true);
    expect(readdirSync(dir).filter((n) => n.startsWith(name))).toEqual([]);
  });

  it("leaves to the CLI what another archive's spool holds, or the spool of a config since changed", async () => {
    const name = names[0] as string;
    const data = dataDir();
    await spoolAs(data, { store: `${url}-elsewhere` }, name);
    const config = join(data, 'pgbp.yml');
    writeFileSync(config, `stage: local\nstore: ${url}\n`);
    await spoolAs(data, { configFile: config }, name);
    writeFileSync(config, `stage: local\nstore: ${url}\nwal: { cluster: main }\n`);
    for (const args of [
      ['--store', url],
      ['--config', config],
    ]) {
      const result = await launch(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', ...args], data, NO_NODE);
      expect(result.code, args.join(' ')).toBe(127);
      expect(existsSync(join(data, 'pg_wal/RECOVERYXLOG'))).toBe(false);
    }
    // The CLI fetches it from the archive the line names.
    const fetched = await launch(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', '--store', url], data);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(segments.get(name) as Buffer)).toBe(true);
  });

  it('names the archive afresh when the line or the config changes between calls, or its record of the last one is incomplete', async () => {
    const [first, second] = names as [string, string];
    const data = dataDir();
    const config = join(data, 'pgbp.yml');
    writeFileSync(config, `stage: local\nstore: ${url}\nwal: { cluster: main }\n`);
    const fetch = (name: string, args: string[]) =>
      launch(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', ...args], data, NO_NODE);
    const handedOver = (name: string) =>
      readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(segments.get(name) as Buffer);

    // A call hands a segment over (and notes which archive its line names), then the config
    // changes, to bytes of the same length: what its old archive spooled answers nothing.
    await spoolAs(data, { configFile: config }, first);
    expect((await fetch(first, ['--config', config])).code).toBe(0);
    await spoolAs(data, { configFile: config }, second);
    writeFileSync(config, `stage: local\nstore: ${url}\nwal: { cluster: mail }\n`);
    expect((await fetch(second, ['--config', config])).code).toBe(127);
    expect(handedOver(first)).toBe(true);
    // The config back as it was: the same archive again.
    writeFileSync(config, `stage: local\nstore: ${url}\nwal: { cluster: main }\n`);
    expect((await fetch(second, ['--config', config])).code).toBe(0);
    expect(handedOver(second)).toBe(true);

    // Likewise a line that names another store, or another cluster, after one that named this.
    await spoolAs(data, { store: url }, first);
    expect((await fetch(first, ['--store', url])).code).toBe(0);
    await spoolAs(data, { store: url }, second);
    expect((await fetch(second, ['--store', `${url}-elsewhere`])).code).toBe(127);
    expect((await fetch(second, ['--store', url, '--cluster', 'main'])).code).toBe(127);
    expect(handedOver(first)).toBe(true);

    // A record of the last archive named (cli/pgbp's archive_tag) that was not written to its
    // end is not read: had it been, this line would have taken another archive's spool.
    const elsewhere = `${url}-elsewhere`;
    const theirs = await spoolAs(data, { store: elsewhere }, second);
    const record = [
      'pgbp archive tag 1',
      realpathSync(data),
      '',
      url,
      '',
      '',
      archiveTag(data, { store: elsewhere }),
    ];
    writeFileSync(join(data, 'pg_wal', '.pgbp', '.tag-fetch'), `${record.join('\n')}\n`);
    expect((await fetch(second, ['--store', url])).code).toBe(0);
    expect(handedOver(second)).toBe(true);
    expect(readdirSync(theirs).filter((n) => n.startsWith(second))).toHaveLength(1);
  });

  it('removes a damaged spool entry and lets the CLI fetch the segment from the archive', async () => {
    const name = names[1] as string;
    const data = dataDir();
    for (const node of [NO_NODE, process.execPath]) {
      const dir = await spoolAs(data, { store: url }, name);
      // The bytes changed after the prefetcher verified them (a bad disk): same size, one bit off.
      const [entry] = readdirSync(dir).filter((n) => n.startsWith(name));
      const damaged = readFileSync(join(dir, entry as string));
      damaged[1000] = (damaged[1000] ?? 0) ^ 0x01;
      writeFileSync(join(dir, entry as string), damaged);

      const result = await launch(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', '--store', url], data, node);
      expect(readdirSync(dir).filter((n) => n.startsWith(name))).toEqual([]);
      if (node === NO_NODE) {
        expect(result.code).toBe(127);
        expect(existsSync(join(data, 'pg_wal/RECOVERYXLOG'))).toBe(false);
      } else {
        expect(result.code, result.stderr).toBe(0);
        expect(readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(segments.get(name) as Buffer)).toBe(
          true,
        );
      }
    }
  });

  it('never answers "not archived" nor a failure itself: the CLI does', async () => {
    const data = dataDir();
    const missing = '0000000100000000000000F0';
    expect(
      (await launch(['wal-fetch', missing, 'pg_wal/RECOVERYXLOG', '--store', url], data, NO_NODE)).code,
    ).toBe(127);
    const result = await launch(['wal-fetch', missing, 'pg_wal/RECOVERYXLOG', '--store', url], data);
    expect(result).toMatchObject({ code: 1, stderr: '' });
    // A spooled segment asked for with what the launcher does not read itself goes to the CLI too.
    await spoolAs(data, { store: url }, names[0] as string);
    for (const extra of [['--json'], ['--store', url], ['--help']]) {
      const args = ['wal-fetch', names[0] as string, 'pg_wal/RECOVERYXLOG', '--store', url, ...extra];
      expect((await launch(args, data, NO_NODE)).code, extra.join(' ')).toBe(127);
    }
    const elsewhere = await launch(
      ['wal-fetch', names[0] as string, join(work, 'RECOVERYXLOG'), '--store', url],
      data,
      NO_NODE,
    );
    expect(elsewhere.code).toBe(127);
  });

  /** A data directory as a server recovering from a base backup has it, as far as the prefetcher looks. */
  function recovering(): string {
    const data = dataDir();
    writeFileSync(join(data, 'postmaster.pid'), '');
    writeFileSync(join(data, 'recovery.signal'), '');
    writeFileSync(
      join(data, 'backup_label'),
      `START WAL LOCATION: 0/1000028 (file ${names[0]})\nCHECKPOINT LOCATION: 0/1000060\n`,
    );
    return data;
  }
  const entries = (dir: string) =>
    readdirSync(dir)
      .filter((n) => /^[0-9A-F]{24}-[0-9a-f]{64}-[0-9]+-[0-9]+$/.test(n))
      .map((n) => n.slice(0, 24))
      .sort();
  const fetchAs = (data: string, name: string, node?: string) =>
    launch(['wal-fetch', name, 'pg_wal/RECOVERYXLOG', '--store', url], data, node);
  const handedOver = (data: string, name: string) =>
    readFileSync(join(data, 'pg_wal/RECOVERYXLOG')).equals(segments.get(name) as Buffer);
  async function ended(data: string, dir: string): Promise<void> {
    rmSync(join(data, 'recovery.signal'), { force: true });
    await waitFor('the prefetcher to exit', () => !existsSync(join(dir, '.prefetcher')), 30_000);
  }

  it('starts the prefetcher when none runs; it spools the next segments with their check and cleans up once recovery has ended', async () => {
    const data = recovering();
    const dir = await spoolAs(data, { store: url }, names[0] as string);
    const result = await fetchAs(data, names[0] as string);
    expect(result.code, result.stderr).toBe(0);
    try {
      await waitFor('the next segments spooled', () => entries(dir).length === 2, 30_000);
      expect(entries(dir)).toEqual(names.slice(1));
      // The next fetches are answered from there, without Node.
      for (const name of names.slice(1)) {
        expect((await fetchAs(data, name, NO_NODE)).code, name).toBe(0);
        expect(handedOver(data, name)).toBe(true);
      }
      // The archive ends there: recovery asks for the next one (not archived: the CLI says so),
      // then once more for the last one (spooled again by the prefetcher, or fetched directly).
      expect(await fetchAs(data, '000000010000000000000004')).toMatchObject({ code: 1 });
      expect((await fetchAs(data, names[2] as string)).code).toBe(0);
      expect(handedOver(data, names[2] as string)).toBe(true);
    } finally {
      await ended(data, dir);
    }
    // Recovery over: nothing left spooled.
    expect(entries(dir)).toEqual([]);
  });

  it("starts the prefetcher from the base backup's start when recovery first asks for a history file", async () => {
    const data = recovering();
    const dir = prefetchDir(data, archiveTag(data, { store: url }));
    // A node that notes what each start of it runs.
    const log = join(data, 'node-starts');
    const node = join(data, 'node');
    writeFileSync(node, `#!/bin/sh\necho "$2" >>'${log}'\nexec '${process.execPath}' "$@"\n`, {
      mode: 0o755,
    });
    try {
      // Not archived: the prefetcher, started now, looks it up first, and its record answers
      // (no Node of the call's own); meanwhile the segments from the start on are spooled.
      expect(
        await launch(['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY', '--store', url], data, node),
      ).toMatchObject({ code: 1, stderr: '' });
      expect(readFileSync(log, 'utf8')).toBe('wal-prefetch\n');
      await waitFor(
        'the segments from the start spooled',
        () => existsSync(dir) && entries(dir).length === 3,
        30_000,
      );
      expect(entries(dir)).toEqual(names);
    } finally {
      await ended(data, dir);
    }
  });
});

describe('wal-push through the launcher', () => {
  async function record(data: string, name: string, bytes: Buffer): Promise<string> {
    const dir = pushedDir(data, archiveTag(data, { store: url }));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, entryName(name, sha256Of(bytes), await cksumOf(bytes, process.env))), '');
    return dir;
  }

  it("answers a push ahead's record itself while the file still has the recorded bytes", async () => {
    const name = names[2] as string;
    const data = dataDir();
    writeFileSync(join(data, 'pg_wal', name), segments.get(name) as Buffer);
    const dir = await record(data, name, segments.get(name) as Buffer);
    const result = await launch(['wal-push', `pg_wal/${name}`, '--store', url], data, NO_NODE);
    expect(result.code, result.stderr).toBe(0);
    // Used up: a later call for the same name is pushed (or found stored) by the CLI.
    expect(readdirSync(dir)).toEqual([]);
  });

  it('leaves a record that no longer matches the file to the CLI, which refuses other contents', async () => {
    const name = names[0] as string;
    const data = dataDir();
    // The segment changed since a push ahead stored it (the archive holds the first contents).
    const changed = segmentBytes();
    writeFileSync(join(data, 'pg_wal', name), changed);
    for (const node of [NO_NODE, process.execPath]) {
      const dir = await record(data, name, segments.get(name) as Buffer);
      const result = await launch(['wal-push', `pg_wal/${name}`, '--store', url], data, node);
      expect(readdirSync(dir)).toEqual([]);
      if (node === NO_NODE) expect(result.code).toBe(127);
      else {
        expect(result.code).toBe(1);
        expect(result.stderr).toContain('WalConflictError');
      }
    }
  });
});
