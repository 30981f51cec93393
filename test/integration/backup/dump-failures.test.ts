import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDump } from '../../../lib/backup/dump.js';
import { parseConfig } from '../../../lib/config.js';
import { DumpFailedError, ObjectExistsError, VersionMismatchError } from '../../../lib/domain/errors.js';
import { s3Client } from '../../../lib/platform/aws-clients/s3.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { defaultSpawn, type Spawn } from '../../../lib/platform/processes.js';
import { resolveConnection } from '../../../lib/postgres/pg-tools.js';
import type { ByteSource } from '../../../lib/storage/byte-source.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { runCli } from '../../support/cli.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { freePort } from '../../support/ports.js';
import { createBucket, inProgressUploads, listKeys } from '../../support/s3.js';
import { type ScratchCluster, startPasswordCluster } from '../../support/scratch-cluster.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-failures-'));
const config = parseConfig({ stage: 'local', store: 'file:///unused' }, 'test');
let bulky: string;
let small: string;

/** Every file under a directory, hidden ones (temporary names) included. */
function filesUnder(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

function dumpOf(
  database: string,
  store: BackupStore,
  extra: { spawn?: Spawn; onProgress?: (b: number) => void; clock?: () => Date } = {},
) {
  return runDump(
    {
      database,
      connection: resolveConnection(config, process.env, database),
      store,
      compression: { codec: 'zstd', level: 1, threads: 0 },
      storageClass: 'STANDARD',
    },
    { env: process.env, logger: silentLogger, ...extra },
  );
}

/** Kills pg_dump with SIGKILL once this many bytes have been stored. */
function killPgDumpAfter(bytes: number) {
  let pgDump: ChildProcess | undefined;
  const spawn: Spawn = (command, args, options) => {
    const child = defaultSpawn(command, args, options);
    if ([command, ...args].includes('pg_dump') && !args.includes('--version')) pgDump = child;
    return child;
  };
  const onProgress = (stored: number) => {
    if (stored > bytes && pgDump && pgDump.exitCode === null) pgDump.kill('SIGKILL');
  };
  return { spawn, onProgress };
}

beforeAll(async () => {
  bulky = uniqueDbName('bulky');
  small = uniqueDbName('small');
  // ~24 MB of random bytes: enough for several multipart parts, quick to make.
  await createDatabase(
    bulky,
    `create table blobs as select g as id, decode(string_agg(md5(g::text || random()::text), ''), 'hex') as payload
       from generate_series(1, 12000) g, generate_series(1, 128) x group by g`,
  );
  await createDatabase(small, 'create table t as select generate_series(1, 100) as id');
});

afterAll(async () => {
  await dropDatabase(bulky);
  await dropDatabase(small);
  rmSync(work, { recursive: true, force: true });
});

describe('a dump that fails leaves nothing that looks like a backup', () => {
  it('pg_dump killed mid-stream into S3: no object, no manifest, no multipart upload in progress', async () => {
    const bucket = await createBucket();
    const kill = killPgDumpAfter(10 * 1024 * 1024);
    const error = await dumpOf(bulky, new S3Store(bucket, 'b'), kill).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DumpFailedError);
    expect((error as Error).message).toMatch(/pg_dump was killed by SIGKILL/);
    expect(await listKeys(bucket)).toEqual([]);
    expect(await inProgressUploads(bucket)).toBe(0);
  });

  it('pg_dump killed mid-stream into a directory: no files or folders at all, temporary ones included', async () => {
    const dir = join(work, 'killed');
    const kill = killPgDumpAfter(4 * 1024 * 1024);
    await expect(dumpOf(bulky, new FileStore(dir), kill)).rejects.toThrow(/pg_dump was killed by SIGKILL/);
    expect(filesUnder(dir)).toEqual([]);
    expect(existsSync(dir), 'the folders the dump made').toBe(false);
  });

  it('an S3 error mid-upload aborts the upload and leaves no object', async () => {
    const bucket = await createBucket();
    let aborted: Promise<unknown> | undefined;
    const onProgress = (stored: number) => {
      if (stored < 12 * 1024 * 1024 || aborted) return;
      // Someone else aborts our upload: the next part fails with NoSuchUpload. Awaited below, so
      // the checks never race the abort itself.
      aborted = s3Client()
        .send(new ListMultipartUploadsCommand({ Bucket: bucket }))
        .then((out) =>
          Promise.all(
            (out.Uploads ?? []).map((u) =>
              s3Client().send(
                new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }),
              ),
            ),
          ),
        );
    };
    const error = await dumpOf(bulky, new S3Store(bucket, 'b'), { onProgress }).catch((e: unknown) => e);
    expect(aborted, 'the upload was aborted from outside').toBeDefined();
    await aborted;
    expect(error).toBeInstanceOf(DumpFailedError);
    expect((error as Error).message).toMatch(/storing .* failed/);
    expect(await listKeys(bucket)).toEqual([]);
    expect(await inProgressUploads(bucket)).toBe(0);
  });

  it('a store that stops reading is named, not the zstd it leaves writing into a broken pipe', async () => {
    // The store reads a little, stops, and reports its failure a second later: by then zstd has
    // died of SIGPIPE, which is the store's doing.
    const dir = join(work, 'stops-reading');
    const files = new FileStore(dir);
    const store = new Proxy(files, {
      get(target, prop) {
        // No file of the store for zstd to write into: the dump goes through putStream.
        if (prop === 'capabilities') return {};
        if (prop === 'putStream') {
          return async (_key: string, body: ByteSource) => {
            await body.fill(Buffer.alloc(64 * 1024));
            body.destroy();
            await new Promise((resolve) => setTimeout(resolve, 1000));
            throw new Error('the quota of the store is exceeded');
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as BackupStore;
    const error = await dumpOf(bulky, store).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DumpFailedError);
    expect((error as Error).message).toMatch(/^storing .* failed: the quota of the store is exceeded$/);
    expect(filesUnder(dir)).toEqual([]);
  });

  it('a full disk on the file store fails naming the full disk and leaves no temporary file', async () => {
    const mountPoint = join(work, 'tiny');
    mkdirSync(mountPoint);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
    expect(mounted.status, `mounting a 2 MiB tmpfs needs root: ${mounted.stderr}`).toBe(0);
    try {
      const error = await dumpOf(bulky, new FileStore(mountPoint)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DumpFailedError);
      // zstd writes the file itself and says so in the OS's words.
      expect((error as Error).message).toMatch(/zstd .*No space left on device/);
      expect(readdirSync(mountPoint)).toEqual([]);
    } finally {
      spawnSync('umount', [mountPoint]);
    }
  });

  it('a compressor that fails is named, not the pg_dump it leaves writing into a broken pipe', async () => {
    // zstd stands in for one that stops reading at once and reports its failure a second later:
    // pg_dump's first write gets SIGPIPE, so pg_dump is the first to fail, but not the cause.
    const fakeZstd =
      'exec 0<&-; sleep 1; echo "zstd: error 70 : Write error : cannot write block" >&2; exit 70';
    const spawn: Spawn = (command, args, options) =>
      command === 'zstd'
        ? defaultSpawn('sh', ['-c', fakeZstd], options)
        : defaultSpawn(command, args, options);
    for (const store of [new FileStore(join(work, 'broken-pipe')), new S3Store(await createBucket(), 'p')]) {
      const error = await dumpOf(bulky, store, { spawn }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DumpFailedError);
      expect((error as Error).message).toBe(
        'zstd exited with code 70: zstd: error 70 : Write error : cannot write block',
      );
    }
    expect(existsSync(join(work, 'broken-pipe'))).toBe(false);
  });

  it('a second dump with the same id is refused and the first backup stays as it was', async () => {
    for (const store of [new FileStore(join(work, 'twice')), new S3Store(await createBucket(), 'p')]) {
      const clock = () => new Date('2026-03-01T02:00:00Z');
      const first = await dumpOf(small, store, { clock });
      await expect(dumpOf(small, store, { clock })).rejects.toBeInstanceOf(ObjectExistsError);
      const { createHash } = await import('node:crypto');
      const bytes = await store.getBytes(first.key);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(first.sha256);
      expect(first.tier).toBe('monthly');
    }
  });
});

describe('the CLI reports a failed dump in one line and exits non-zero', () => {
  let cluster: ScratchCluster;
  const password = 'S3cr3t-pw-9f8e7d';

  beforeAll(async () => {
    cluster = await startPasswordCluster(password);
  });
  afterAll(() => cluster?.remove());

  it('with a wrong password: says authentication failed, never prints the password, writes nothing', async () => {
    const dir = join(work, 'wrong-pw');
    const wrong = 'Wr0ng-pw-a1b2c3';
    const result = await runCli(['dump', '--database', 'postgres', '--store', `file://${dir}`], {
      env: { PGPORT: String(cluster.port), PGPASSWORD: wrong },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      /DumpFailedError: cannot connect to postgres@127\.0\.0\.1:\d+\/postgres: .*password authentication failed/,
    );
    expect(result.stdout + result.stderr).not.toContain(wrong);
    expect(existsSync(dir), 'the store folder').toBe(false);
  });

  it('with the right password from PGPASSWORD: dumps, and the manifest holds no password', async () => {
    const dir = join(work, 'right-pw');
    const result = await runCli(['dump', '--database', 'postgres', '--store', `file://${dir}`, '--json'], {
      env: { PGPORT: String(cluster.port), PGPASSWORD: password },
    });
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).not.toContain(password);
    const { readFileSync } = await import('node:fs');
    for (const file of filesUnder(dir)) expect(readFileSync(file, 'utf8')).not.toContain(password);
  });

  it('with the server unreachable: names where it tried to connect', async () => {
    const port = await freePort();
    const dir = join(work, 'unreachable');
    const result = await runCli(['dump', '--database', 'app', '--store', `file://${dir}`], {
      env: { PGPORT: String(port) },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      new RegExp(`cannot connect to postgres@127\\.0\\.0\\.1:${port}/app: .*ECONNREFUSED`),
    );
    expect(existsSync(dir), 'the store folder').toBe(false);
  });

  it('with a pg_dump older than the server: VersionMismatchError naming both versions', async () => {
    // Says it is 12.3 when asked, and dumps for real otherwise: the dump runs while the
    // versions are compared, and must not be kept.
    const realPgDump = spawnSync('sh', ['-c', 'command -v pg_dump']).stdout.toString().trim();
    const bin = join(work, 'old-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'pg_dump'),
      `#!/bin/sh\nif [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 12.3"; else exec ${realPgDump} "$@"; fi\n`,
    );
    chmodSync(join(bin, 'pg_dump'), 0o755);
    const dir = join(work, 'old');
    const result = await runCli(['dump', '--database', bulky, '--store', `file://${dir}`], {
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /VersionMismatchError: pg_dump 12\.3 is older than the server's PostgreSQL \d+\.\d+/,
    );
    expect(existsSync(dir), 'the store folder').toBe(false);
    expect(VersionMismatchError.errorName).toBe('VersionMismatchError');
  });
});
