import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import {
  BackupNotFoundError,
  CorruptBackupError,
  InvalidRestoreRequestError,
  RestoreFailedError,
} from '../../../lib/domain/errors.js';
import type { Manifest } from '../../../lib/domain/manifest.js';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { createDatabase, databaseExists, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import { awkwardDatabase, connection, databasesLike, dump, restoreDeps } from './fixture.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-restore-guards-'));
const pristine = join(work, 'pristine');
const created: string[] = [];
let source: string;
let zstdBackup: Manifest;
let plainBackup: Manifest;

beforeAll(async () => {
  source = await awkwardDatabase('guard_src');
  created.push(source);
  const store = new FileStore(pristine);
  zstdBackup = await dump(store, source, { codec: 'zstd' });
  plainBackup = await dump(store, source, { codec: 'none' });
});

afterAll(async () => {
  for (const db of created) await dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

/** A copy of the pristine store to damage. */
function copyOfStore(label: string): { store: FileStore; root: string } {
  const root = join(work, label);
  cpSync(pristine, root, { recursive: true });
  return { store: new FileStore(root), root };
}

function keysIn(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[]).sort();
}

function target(label: string): string {
  const name = uniqueDbName(label);
  created.push(name);
  return name;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected the restore to fail');
    },
    (e: unknown) => e as Error,
  );
}

/** Leaves nothing of this run's: no target, no scratch or replacement database for this source. */
async function expectNothingCreated(into: string): Promise<void> {
  expect(await databaseExists(into)).toBe(false);
  expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
}

describe('bad restore requests fail before anything is created', () => {
  const store = () => new FileStore(pristine);

  it.each([
    [
      'the target is the source',
      () => ({ targetDatabase: source }),
      InvalidRestoreRequestError,
      /is the source database/,
    ],
    [
      'an unknown backup id',
      () => ({ backup: `${source}-20200101T000000Z` }),
      BackupNotFoundError,
      /no backup .*-20200101T000000Z/,
    ],
    [
      'a malformed backup id',
      () => ({ backup: `${source}-yesterday` }),
      InvalidRestoreRequestError,
      /malformed backup id/,
    ],
    [
      'a schema name with a quote in it',
      () => ({ schemas: ['core', 'x"y'] }),
      InvalidRestoreRequestError,
      /schemas\[1\].*quote/,
    ],
    ['a malformed time', () => ({ before: '20th of June' }), InvalidRestoreRequestError, /malformed time/],
    [
      'no backup before the time',
      () => ({ before: '2001-01-01T00:00:00Z' }),
      BackupNotFoundError,
      /taken before 2001/,
    ],
  ] as const)('%s', async (_label, fields, type, message) => {
    const into = target('bad');
    const before = keysIn(pristine);
    const error = await failure(
      (async () =>
        runRestore(
          parseRestoreRequest({ database: source, targetDatabase: into, ...fields() }),
          restoreDeps(store()),
        ))(),
    );
    expect(error).toBeInstanceOf(type);
    expect(error.message).toMatch(message);
    await expectNothingCreated(into);
    expect(keysIn(pristine)).toEqual(before);
  });

  it.each([
    ['zstd', 1],
    ['zstd', 2],
    ['none', 1],
  ] as const)(
    'a schema the %s backup does not contain (%i jobs), naming the schemas it has',
    async (codec, jobs) => {
      const into = target('noschema');
      const backup = codec === 'zstd' ? zstdBackup : plainBackup;
      const before = keysIn(pristine);
      const error = await failure(
        runRestore(
          parseRestoreRequest({
            database: source,
            backup: backup.id,
            targetDatabase: into,
            schemas: ['core', 'nosuchschema'],
            jobs,
          }),
          restoreDeps(store()),
        ),
      );
      expect(error).toBeInstanceOf(InvalidRestoreRequestError);
      expect(error.message).toMatch(
        new RegExp(`^schemas: nosuchschema is not in backup ${backup.id}, whose schemas are `),
      );
      for (const schema of ['auth', 'core', 'Reporting Ünïcode']) expect(error.message).toContain(schema);
      await expectNothingCreated(into);
      expect(keysIn(pristine)).toEqual(before);
    },
  );

  it('`latest` of a database with no backups', async () => {
    const into = target('bad');
    const error = await failure(
      runRestore(
        parseRestoreRequest({ database: 'pgbp_never_backed_up', targetDatabase: into }),
        restoreDeps(store()),
      ),
    );
    expect(error).toBeInstanceOf(BackupNotFoundError);
    expect(error.message).toMatch(/no backup of pgbp_never_backed_up in file:\/\//);
    await expectNothingCreated(into);
  });

  it('a target that exists, which is left exactly as it was', async () => {
    const into = target('exists');
    await withClient('postgres', (c) => c.query(`create database "${into}"`));
    await withClient(into, (c) => c.query('create table mine (x int); insert into mine values (42)'));
    const error = await failure(
      runRestore(parseRestoreRequest({ database: source, targetDatabase: into }), restoreDeps(store())),
    );
    expect(error).toBeInstanceOf(InvalidRestoreRequestError);
    expect(error.message).toMatch(new RegExp(`${into} already exists`));
    const left = await withClient(into, (c) =>
      c.query<{ relname: string }>(
        `select relname from pg_class where relnamespace = 'public'::regnamespace`,
      ),
    );
    expect(left.rows.map((r) => r.relname)).toEqual(['mine']);
  });
});

describe('a restore the server refuses', () => {
  it('fails with RestoreFailedError when the role may not create databases, and creates nothing', async () => {
    const role = uniqueDbName('nocreatedb');
    await withClient('postgres', (c) => c.query(`create role "${role}" login nocreatedb`));
    try {
      const into = target('refused');
      const error = await failure(
        runRestore(
          parseRestoreRequest({ database: source, targetDatabase: into }),
          restoreDeps(new FileStore(pristine), { connection: { ...connection, user: role } }),
        ),
      );
      expect(error).toBeInstanceOf(RestoreFailedError);
      expect(error.message).toMatch(new RegExp(`cannot create the database ${into}: permission denied`));
      await expectNothingCreated(into);
    } finally {
      await withClient('postgres', (c) => c.query(`drop role "${role}"`));
    }
  });
});

describe('a damaged backup is never reported as restored', () => {
  function flipByteAt(root: string, manifest: Manifest, offset: number): void {
    const path = join(root, manifest.key);
    const bytes = readFileSync(path);
    bytes[offset] = (bytes[offset] as number) ^ 0x01;
    writeFileSync(path, bytes);
  }

  it('one flipped byte in a zstd backup fails with CorruptBackupError and drops the target', async () => {
    const { store, root } = copyOfStore('flip-zstd');
    flipByteAt(root, zstdBackup, Math.floor(zstdBackup.sizeBytes / 2));
    const into = target('flip');
    const error = await failure(
      runRestore(
        parseRestoreRequest({ database: source, backup: zstdBackup.id, targetDatabase: into }),
        restoreDeps(store),
      ),
    );
    expect(error).toBeInstanceOf(CorruptBackupError);
    expect(error.message).toMatch(/SHA-256 .* the manifest records/);
    await expectNothingCreated(into);
  });

  it('one flipped byte in row data that pg_restore accepts still fails, and the target is dropped', async () => {
    const { store, root } = copyOfStore('flip-plain');
    // An uncompressed archive holds rows as COPY text: change one letter of one row.
    const offset = readFileSync(join(root, plainBackup.key)).indexOf('user17@example.com');
    expect(offset).toBeGreaterThan(0);
    flipByteAt(root, plainBackup, offset);
    const into = target('flip');
    const error = await failure(
      runRestore(
        parseRestoreRequest({ database: source, backup: plainBackup.id, targetDatabase: into }),
        restoreDeps(store),
      ),
    );
    expect(error).toBeInstanceOf(CorruptBackupError);
    await expectNothingCreated(into);
  });

  it('a flipped byte is caught before a parallel restore starts: nothing is created, the spool is gone', async () => {
    const { store, root } = copyOfStore('flip-spool');
    flipByteAt(root, zstdBackup, Math.floor(zstdBackup.sizeBytes / 3));
    const spoolDir = mkdtempSync(join(work, 'spool-'));
    const into = target('flip');
    const error = await failure(
      runRestore(
        parseRestoreRequest({ database: source, backup: zstdBackup.id, targetDatabase: into, jobs: 2 }),
        restoreDeps(store, { policy: { spoolDir, spoolHeadroom: 0 } }),
      ),
    );
    expect(error).toBeInstanceOf(CorruptBackupError);
    await expectNothingCreated(into);
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('a truncated backup fails with CorruptBackupError before anything is created', async () => {
    const { store, root } = copyOfStore('truncated');
    truncateSync(join(root, zstdBackup.key), Math.floor(zstdBackup.sizeBytes / 2));
    const into = target('trunc');
    const error = await failure(
      runRestore(
        parseRestoreRequest({ database: source, backup: zstdBackup.id, targetDatabase: into }),
        restoreDeps(store),
      ),
    );
    expect(error).toBeInstanceOf(CorruptBackupError);
    expect(error.message).toMatch(/manifest says/);
    await expectNothingCreated(into);
  });

  it('verify of a damaged backup fails, leaves no scratch database and writes no report', async () => {
    const { store, root } = copyOfStore('flip-verify');
    flipByteAt(root, zstdBackup, Math.floor(zstdBackup.sizeBytes / 2));
    const error = await failure(
      runRestore(
        parseRestoreRequest({ mode: 'verify', database: source, backup: zstdBackup.id }),
        restoreDeps(store),
      ),
    );
    expect(error).toBeInstanceOf(CorruptBackupError);
    expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
    expect(await store.head(keysFor(store.prefix, zstdBackup.id).verify)).toBeUndefined();
  });
});

describe('a parallel restore never fills the disk it spools to', () => {
  it('gives up the spool when the archive outgrows the room, streams instead, and leaves the disk empty', async () => {
    // Text this repetitive compresses about a hundredfold: the estimate of its size on disk is far short.
    const repetitive = uniqueDbName('repetitive');
    created.push(repetitive);
    await createDatabase(
      repetitive,
      `create table filler as select g as id, repeat('pgbp restore ', 400) as body from generate_series(1, 2000) g`,
    );
    const store = new FileStore(join(work, 'repetitive'));
    const backup = await dump(store, repetitive);
    const tiny = join(work, 'tiny');
    mkdirSync(tiny);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tiny]);
    expect(mounted.status, `mounting a 1 MiB tmpfs needs root: ${mounted.stderr}`).toBe(0);
    try {
      const into = target('spill');
      const report = await runRestore(
        parseRestoreRequest({ database: repetitive, backup: backup.id, targetDatabase: into, jobs: 2 }),
        restoreDeps(store, { policy: { spoolDir: tiny, spoolHeadroom: 64 * 1024 } }),
      );
      expect(report).toMatchObject({ jobs: 1, spooled: false, passed: true });
      expect(report.warnings).toEqual([
        expect.stringMatching(/outgrew the room in .*keeping 64\.0 KiB free/),
      ]);
      expect(report.tables).toEqual([
        { schema: 'public', name: 'filler', kind: 'table', rows: 2000, backupRows: 2000, estimate: -1 },
      ]);
      expect(readdirSync(tiny)).toEqual([]);
    } finally {
      spawnSync('umount', [tiny]);
    }
  });

  it('streams instead when the spool directory cannot be used at all', async () => {
    const report = await runRestore(
      parseRestoreRequest({ mode: 'verify', database: source, backup: zstdBackup.id, jobs: 2 }),
      restoreDeps(new FileStore(pristine), { policy: { spoolDir: join(work, 'no-such-dir') } }),
    );
    expect(report).toMatchObject({ jobs: 1, spooled: false, passed: true });
    expect(report.warnings).toEqual([expect.stringMatching(/cannot spool in .*no-such-dir: ENOENT/)]);
  });
});
