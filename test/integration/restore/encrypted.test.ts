import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.js';
import { CorruptBackupError, KeyUnavailableError } from '../../../lib/domain/errors.js';
import { storeStatus } from '../../../lib/monitor/staleness.js';
import { kmsClient } from '../../../lib/platform/aws-clients/kms.js';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { isEnvelope } from '../../../lib/storage/encrypting-store.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { withEncryption } from '../../../lib/storage/open-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { type DatabaseSnapshot, snapshot } from '../../support/compare.js';
import { keyFile, kmsKey } from '../../support/keys.js';
import { databaseExists, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { createBucket } from '../../support/s3.js';
import { tempDir } from '../../support/temp.js';
import { awkwardDatabase, databasesLike, dump, restoreDeps } from './fixture.js';

const created: string[] = [];
let source: string;
let sourceSnapshot: DatabaseSnapshot;
const root = tempDir('pgbp-encrypted-');
let files: FileStore;
let onFiles: BackupStore;
let bucket: string;
let devKey: Awaited<ReturnType<typeof kmsKey>>;
let onS3: BackupStore;
let filesKey: string;

const DECRYPT_SCRIPT = new URL('../../../docs/examples/decrypt-object.mjs', import.meta.url).pathname;

/** Strings of the awkward fixture's rows, which no stored byte may hold. */
const FIXTURE_STRINGS = ['user17@example.com', 'Reporting Ünïcode', 'Daily Totals (EUR)', 'Opening Balance'];

function target(label: string): string {
  const name = uniqueDbName(label);
  created.push(name);
  return name;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error,
  );
}

async function storedBytes(store: BackupStore): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const o of store.list(store.prefix)) {
    if (!o.key.endsWith('.json')) out.push(await store.getBytes(o.key));
  }
  return out;
}

beforeAll(async () => {
  source = await awkwardDatabase('enc_src');
  created.push(source);
  sourceSnapshot = await snapshot(source);
  files = new FileStore(join(root, 'nas'));
  filesKey = await keyFile();
  onFiles = await withEncryption(files, { keyFile: filesKey, required: true }, 'local');
  bucket = await createBucket();
  devKey = await kmsKey('dev');
  onS3 = await withEncryption(
    new S3Store(bucket, 'backups'),
    { kmsKeyId: devKey.alias, required: true },
    'dev',
  );
});

afterAll(async () => {
  for (const db of created) await dropDatabase(db);
});

describe('encrypted backups', () => {
  it('round-trip with a key file to a directory and with KMS to S3, every stored byte ciphertext', async () => {
    // Uncompressed on the directory: the archive's rows would be there to read, were they not encrypted.
    const plainArchive = await dump(onFiles, source, { codec: 'none' });
    const zstdArchive = await dump(onS3, source);
    for (const [store, manifest] of [
      [onFiles, plainArchive],
      [onS3, zstdArchive],
    ] as const) {
      expect(manifest.encryption.envelope).toEqual({
        format: 'aws-encryption-sdk',
        keyId: await store.capabilities.envelope?.keyId(),
        suite: 'ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY',
        frameLength: 1024 * 1024,
        context: {
          'pgbp:stage': store === onFiles ? 'local' : 'dev',
          'pgbp:object': manifest.key.replace(/^backups\//, ''),
          'pgbp:database': source,
          'pgbp:backup': manifest.id,
        },
      });
      const into = target('enc');
      const report = await runRestore(
        parseRestoreRequest({ database: source, backup: manifest.id, targetDatabase: into }),
        restoreDeps(store),
      );
      expect(report.passed).toBe(true);
      const after = await snapshot(into);
      expect(after.schema).toBe(sourceSnapshot.schema);
      expect(after.tables).toEqual(sourceSnapshot.tables);
    }
    expect(devKey.arn).toMatch(/^arn:aws:kms:/);
    expect(zstdArchive.encryption.envelope?.keyId).toBe(devKey.arn);
    const raw = [...(await storedBytes(files)), ...(await storedBytes(new S3Store(bucket, 'backups')))];
    // Each dump and the cluster globals taken with it, every one an Encryption SDK message.
    expect(raw.length).toBe(4);
    for (const bytes of raw) {
      expect(isEnvelope(bytes)).toBe(true);
      for (const s of FIXTURE_STRINGS) expect(bytes.includes(s)).toBe(false);
    }
    // The manifest's digest and size are of what is stored.
    const stored = readFileSync(join(root, 'nas', plainArchive.key));
    expect(stored.length).toBe(plainArchive.sizeBytes);
  });

  it('one flipped byte in an encrypted dump fails before anything is restored', async () => {
    const manifest = await dump(onFiles, source, { codec: 'none' });
    const path = join(root, 'nas', manifest.key);
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] as number) ^ 0x01;
    chmodSync(path, 0o600);
    writeFileSync(path, bytes);
    const into = target('enc_flip');
    const error = await failure(
      runRestore(
        parseRestoreRequest({ database: source, backup: manifest.id, targetDatabase: into }),
        restoreDeps(onFiles),
      ),
    );
    expect(error).toBeInstanceOf(CorruptBackupError);
    expect(await databaseExists(into)).toBe(false);
    expect(await databasesLike(`pgbp_verify_${source}`)).toEqual([]);
  });

  it("a dump encrypted under dev's key does not restore with prod's", async () => {
    const manifest = await dump(onS3, source);
    const prodKey = await kmsKey('prod');
    const prod = await withEncryption(
      new S3Store(bucket, 'backups'),
      { kmsKeyId: prodKey.alias, required: true },
      'prod',
    );
    const into = target('enc_prod');
    const error = await failure(
      runRestore(
        parseRestoreRequest({ database: source, backup: manifest.id, targetDatabase: into }),
        restoreDeps(prod),
      ),
    );
    expect(error).toBeInstanceOf(KeyUnavailableError);
    expect(error.message).toBe(
      `${manifest.id} is encrypted under key ${devKey.arn}, not this stage's key ${prodKey.alias} (${prodKey.arn}): it belongs to another stage`,
    );
    expect(await databaseExists(into)).toBe(false);
  });

  it('a missing or disabled key fails the dump before any object is created', async () => {
    const empty = new FileStore(join(root, 'empty'));
    const missing = await withEncryption(empty, { kmsKeyId: 'alias/pgbp-never-made', required: true }, 'dev');
    const noKey = await failure(dump(missing, source));
    expect(noKey).toBeInstanceOf(KeyUnavailableError);
    expect(noKey.message).toMatch(/^KMS key alias\/pgbp-never-made does not exist/);
    const key = await kmsKey('off');
    await kmsClient().disableKey({ KeyId: key.id });
    const off = await withEncryption(empty, { kmsKeyId: key.alias, required: true }, 'dev');
    const disabled = await failure(dump(off, source));
    expect(disabled).toBeInstanceOf(KeyUnavailableError);
    expect(disabled.message).toBe(`KMS key ${key.alias} is disabled, not enabled`);
    const left: string[] = [];
    for await (const o of empty.list('')) left.push(o.key);
    expect(left).toEqual([]);
  });

  it('a backup made before the key rotated, and one made before encryption, still restore; status warns of the latter', async () => {
    const key = await kmsKey('rotating');
    const store = new S3Store(bucket, 'rotation');
    const encrypted = await withEncryption(store, { kmsKeyId: key.alias, required: true }, 'dev');
    const plain = await dump(store, source);
    const before = await dump(encrypted, source);
    await kmsClient().enableKeyRotation({ KeyId: key.id });
    await kmsClient().rotateKeyOnDemand({ KeyId: key.id });
    // A new process after the rotation: the key opens afresh.
    const after = await withEncryption(store, { kmsKeyId: key.alias, required: true }, 'dev');
    expect(plain.encryption.envelope).toBeUndefined();
    for (const manifest of [plain, before]) {
      const report = await runRestore(
        parseRestoreRequest({ mode: 'verify', database: source, backup: manifest.id }),
        restoreDeps(after),
      );
      expect(report.passed).toBe(true);
    }
    const status = (required: boolean) =>
      storeStatus({
        store: after,
        config: parseConfig(
          { stage: 'dev', store: 's3://bucket-a/rotation', encryption: { kmsKeyId: key.alias, required } },
          'status test',
        ),
        now: new Date(),
        databases: [source],
      });
    expect((await status(true)).warnings).toEqual([
      `${source}: 1 backup stored before encryption (plaintext), on a stage that requires encryption; they stay readable until retention removes them`,
    ]);
    expect((await status(false)).warnings).toEqual([]);
  });

  it('decrypts with a short script of the Encryption SDK and the KMS client alone, into what pg_restore reads', async () => {
    const plainS3 = new S3Store(bucket, 'backups');
    for (const [store, raw, manifest, key] of [
      [onS3, plainS3, await dump(onS3, source), undefined],
      [onFiles, files, await dump(onFiles, source, { codec: 'none' }), filesKey],
    ] as const) {
      const dir = mkdtempSync(join(root, 'decrypt-'));
      writeFileSync(
        join(dir, 'manifest.json'),
        await raw.getBytes(manifest.key.replace(/\.dump$/, '.manifest.json')),
      );
      writeFileSync(join(dir, 'object'), await raw.getBytes(manifest.key));
      const script = spawnSync(
        'node',
        [
          DECRYPT_SCRIPT,
          join(dir, 'manifest.json'),
          join(dir, 'object'),
          join(dir, 'plain'),
          ...(key ? [key] : []),
        ],
        { encoding: 'utf8', env: process.env },
      );
      expect(script.stderr).toBe('');
      expect(script.status).toBe(0);
      const plain = readFileSync(join(dir, 'plain'));
      expect(plain.equals(Buffer.concat(await (await store.getStream(manifest.key)).toArray()))).toBe(true);
      const archive = manifest.compression.codec === 'zstd' ? join(dir, 'archive') : join(dir, 'plain');
      if (archive !== join(dir, 'plain')) spawnSync('zstd', ['-q', '-d', join(dir, 'plain'), '-o', archive]);
      const listed = spawnSync('pg_restore', ['--list', archive], { encoding: 'utf8' });
      expect(listed.status).toBe(0);
      expect(listed.stdout).toMatch(/TABLE DATA core accounts /);
    }
  });
});
