import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { isEnvelope } from '../../../lib/storage/encrypting-store.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { runCli as runPgbp } from '../../support/cli.js';
import { writeConfigFile } from '../../support/pipeline.js';
import { createBucket } from '../../support/s3.js';
import { type ScratchCluster, startCluster } from '../../support/scratch-cluster.js';

/** Real WAL files of two clusters, copied out of their pg_wal. */
let work: string;
let a: { segments: string[] };
let b: { segments: string[] };

async function walOf(name: string): Promise<{ segments: string[] }> {
  const cluster: ScratchCluster = await startCluster({ walSegmentMb: 1, settings: { wal_level: 'replica' } });
  try {
    cluster.sql('create table t as select g, md5(g::text) m from generate_series(1, 30000) g');
    cluster.sql('select pg_switch_wal()');
    cluster.sql('insert into t select g, md5(g::text) m from generate_series(1, 30000) g');
    cluster.sql('select pg_switch_wal()');
    const current = cluster.sql('select pg_walfile_name(pg_current_wal_lsn())');
    const pgWal = join(cluster.data, 'pg_wal');
    const segments = readdirSync(pgWal)
      .filter((n) => /^[0-9A-F]{24}$/.test(n) && n < current)
      .sort();
    for (const n of segments) {
      copyFileSync(join(pgWal, n), join(work, `${name}-${n}`));
    }
    return { segments };
  } finally {
    cluster.remove();
  }
}

/** pgbp as PostgreSQL runs it, in a working directory of its own (its pg_wal/.pgbp stays there). */
function runCli(args: readonly string[]) {
  return runPgbp(args, { cwd: work });
}

function fileOf(cluster: 'a' | 'b', name: string): string {
  return join(work, `${cluster}-${name}`);
}

/** A copy of a WAL file under its own name in a folder of its own, as pg_wal holds it. */
function asPgWal(source: string, name: string): string {
  const dir = mkdtempSync(join(work, 'pg_wal-'));
  copyFileSync(source, join(dir, name));
  return join(dir, name);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pgbp-wal-'));
  a = await walOf('a');
  b = await walOf('b');
  expect(a.segments.length).toBeGreaterThan(1);
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function storeDir(): string {
  return mkdtempSync(join(work, 'store-'));
}

describe('pgbp wal-push', () => {
  it('stores a segment once and exits 0 again for the same bytes, as after a crash', async () => {
    const store = storeDir();
    const [first] = a.segments as [string];
    const path = asPgWal(fileOf('a', first), first);
    const once = await runCli(['wal-push', path, '--store', `file://${store}`, '--json']);
    expect(once.stderr).toBe('');
    expect(once.code).toBe(0);
    expect(JSON.parse(once.stdout)).toMatchObject({ name: first, status: 'stored' });
    const again = await runCli(['wal-push', path, '--store', `file://${store}`, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ name: first, status: 'already-stored' });
    const keys: string[] = [];
    for await (const o of new FileStore(store).list('')) keys.push(o.key);
    expect(keys.filter((k) => parseWalObjectKey(k)?.name === first)).toHaveLength(1);
    expect(keys).toContain('~cluster/main/archive.json');
  });

  it('refuses the same name with other contents, keeps the stored copy and alerts', async () => {
    const store = storeDir();
    const [first] = a.segments as [string];
    expect(
      (await runCli(['wal-push', asPgWal(fileOf('a', first), first), '--store', `file://${store}`])).code,
    ).toBe(0);
    const changed = readFileSync(fileOf('a', first));
    changed[changed.length - 100] = (changed[changed.length - 100] ?? 0) ^ 0xff;
    const path = asPgWal(fileOf('a', first), first);
    writeFileSync(path, changed);
    const refused = await runCli(['wal-push', path, '--store', `file://${store}`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/WalConflictError: .*already archived .*other contents/);
    expect(refused.stderr).toContain('WAL archive conflict');
    // The archive still hands out the original bytes.
    const dest = join(mkdtempSync(join(work, 'fetch-')), 'RECOVERYXLOG');
    expect((await runCli(['wal-fetch', first, dest, '--store', `file://${store}`])).code).toBe(0);
    expect(readFileSync(dest).equals(readFileSync(fileOf('a', first)))).toBe(true);
  });

  it("refuses a segment of another cluster than the archive's", async () => {
    const store = storeDir();
    const [first] = a.segments as [string];
    const [other] = b.segments.filter((n) => n !== first) as [string];
    expect(
      (await runCli(['wal-push', asPgWal(fileOf('a', first), first), '--store', `file://${store}`])).code,
    ).toBe(0);
    const refused = await runCli([
      'wal-push',
      asPgWal(fileOf('b', other), other),
      '--store',
      `file://${store}`,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/ForeignClusterError: .*system identifier/);
    const names: string[] = [];
    for await (const o of new FileStore(store).list('')) names.push(parseWalObjectKey(o.key)?.name ?? o.key);
    expect(names).not.toContain(other === first ? '' : other);
  });

  it('refuses a file that is not a WAL file', async () => {
    const store = storeDir();
    const dir = mkdtempSync(join(work, 'pg_wal-'));
    writeFileSync(join(dir, 'notes.txt'), 'hello');
    writeFileSync(join(dir, '000000010000000000000009'), Buffer.alloc(8192));
    const named = await runCli(['wal-push', join(dir, 'notes.txt'), '--store', `file://${store}`]);
    expect(named.code).not.toBe(0);
    expect(named.stderr).toMatch(/InvalidWalFileError: "notes.txt" is not a WAL file name/);
    const zeros = await runCli([
      'wal-push',
      join(dir, '000000010000000000000009'),
      '--store',
      `file://${store}`,
    ]);
    expect(zeros.code).not.toBe(0);
    expect(zeros.stderr).toMatch(/long page header/);
  });
});

describe('pgbp wal-fetch', () => {
  it('exits 1 quietly for a name the archive does not hold, and writes nothing', async () => {
    const store = storeDir();
    const [first] = a.segments as [string];
    expect(
      (await runCli(['wal-push', asPgWal(fileOf('a', first), first), '--store', `file://${store}`])).code,
    ).toBe(0);
    const dir = mkdtempSync(join(work, 'fetch-'));
    for (const name of ['00000002.history', '0000000100000000000000FE']) {
      const missing = await runCli([
        'wal-fetch',
        name,
        join(dir, 'RECOVERYXLOG'),
        '--store',
        `file://${store}`,
      ]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe('');
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('aborts (status above 125) when the store holds no archive at all, instead of reporting "not archived"', async () => {
    const empty = storeDir();
    const fetched = await runCli([
      'wal-fetch',
      '000000010000000000000002',
      join(work, 'RECOVERYXLOG'),
      '--store',
      `file://${join(empty, 'not-mounted')}`,
    ]);
    expect(fetched.code).toBeGreaterThan(125);
    expect(fetched.stderr).toMatch(/no WAL archive main|does not exist/);
  });

  it('aborts (status above 125) on a damaged stored copy, naming the file, and writes nothing at the destination', async () => {
    const store = storeDir();
    const [first] = a.segments as [string];
    expect(
      (await runCli(['wal-push', asPgWal(fileOf('a', first), first), '--store', `file://${store}`])).code,
    ).toBe(0);
    let key = '';
    for await (const o of new FileStore(store).list('')) if (parseWalObjectKey(o.key)) key = o.key;
    const stored = readFileSync(join(store, key));
    stored[Math.floor(stored.length / 2)] = (stored[Math.floor(stored.length / 2)] ?? 0) ^ 0x55;
    writeFileSync(join(store, key), stored);
    const dir = mkdtempSync(join(work, 'fetch-'));
    const fetched = await runCli([
      'wal-fetch',
      first,
      join(dir, 'RECOVERYXLOG'),
      '--store',
      `file://${store}`,
    ]);
    expect(fetched.code).toBeGreaterThan(125);
    expect(fetched.stderr).toContain(`pgbp wal-fetch ${first}`);
    expect(fetched.stderr).toMatch(/CorruptWalError: .*damaged/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('fetches every kind of name from S3, verified, byte for byte', async () => {
    const bucket = await createBucket();
    const url = `s3://${bucket}/wal-test`;
    const [first] = a.segments as [string];
    const dir = mkdtempSync(join(work, 'pg_wal-'));
    // Written here as PostgreSQL writes them next to its segments.
    const history = '00000002.history';
    writeFileSync(join(dir, history), '1\t0/3000000\tno recovery target specified\n');
    const backup = `${first}.00000028.backup`;
    writeFileSync(join(dir, backup), 'START WAL LOCATION: 0/1000028\n');
    const partial = `${first}.partial`;
    copyFileSync(fileOf('a', first), join(dir, partial));
    copyFileSync(fileOf('a', first), join(dir, first));
    for (const name of [first, history, backup, partial]) {
      const pushed = await runCli(['wal-push', join(dir, name), '--store', url]);
      expect(pushed.stderr).toBe('');
      expect(pushed.code).toBe(0);
    }
    for (const name of [first, history, backup, partial]) {
      const dest = join(dir, 'RECOVERYXLOG');
      const fetched = await runCli(['wal-fetch', name, dest, '--store', url]);
      expect(fetched.code).toBe(0);
      expect(readFileSync(dest).equals(readFileSync(join(dir, name))), name).toBe(true);
    }
    expect(existsSync(join(dir, 'RECOVERYXLOG'))).toBe(true);
  });

  it('with encryption: stores each file as ciphertext, fetches it back verified, and aborts on one flipped byte', async () => {
    const store = storeDir();
    const key = join(work, `stage-${Date.now()}.key`);
    writeFileSync(key, randomBytes(32), { mode: 0o600 });
    const config = await writeConfigFile(mkdtempSync(join(work, 'config-')), {
      stage: 'local',
      store: `file://${store}`,
      encryption: { keyFile: key, required: true },
    });
    const [first] = a.segments as [string];
    const original = readFileSync(fileOf('a', first));
    expect((await runCli(['wal-push', asPgWal(fileOf('a', first), first), '--config', config])).code).toBe(0);
    let stored = '';
    for await (const o of new FileStore(store).list('')) if (parseWalObjectKey(o.key)) stored = o.key;
    const bytes = readFileSync(join(store, stored));
    expect(isEnvelope(bytes)).toBe(true);
    const dir = mkdtempSync(join(work, 'fetch-'));
    const dest = join(dir, 'RECOVERYXLOG');
    expect((await runCli(['wal-fetch', first, dest, '--config', config])).code).toBe(0);
    expect(readFileSync(dest).equals(original)).toBe(true);
    rmSync(dest);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0x01;
    writeFileSync(join(store, stored), bytes);
    const fetched = await runCli(['wal-fetch', first, dest, '--config', config]);
    expect(fetched.code).toBeGreaterThan(125);
    expect(fetched.stderr).toMatch(/CorruptWalError: .*damaged.*does not authenticate/);
    expect(readdirSync(dir)).toEqual([]);
  });
});
