import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Config, parseConfig } from '../../lib/config.js';
import { backupIdFor, classifyTier, keysFor } from '../../lib/domain/backup-layout.js';
import { MANIFEST_VERSION, type Manifest, parseManifest } from '../../lib/domain/manifest.js';
import type { FileStore } from '../../lib/storage/file-store.js';
import type { BackupStore } from '../../lib/storage/store.js';

/** A valid manifest for a backup of `database` taken at `createdAt`, describing `dump`. */
export function makeManifest(
  prefix: string,
  database: string,
  createdAt: Date,
  dump: Uint8Array,
  overrides: Partial<Manifest> = {},
): Manifest {
  const id = backupIdFor(database, createdAt);
  return parseManifest({
    manifestVersion: MANIFEST_VERSION,
    id,
    database,
    tier: classifyTier(createdAt),
    createdAt: new Date(Math.floor(createdAt.getTime() / 1000) * 1000).toISOString(),
    finishedAt: new Date(createdAt.getTime() + 60_000).toISOString(),
    durationMs: 60_000,
    format: 'custom',
    compression: { codec: 'zstd', level: 1 },
    sizeBytes: dump.length,
    sha256: createHash('sha256').update(dump).digest('hex'),
    serverVersion: '17.2',
    pgDumpVersion: '17.2',
    key: keysFor(prefix, id).dump,
    storageClass: 'STANDARD',
    encryption: { type: 'none' },
    tables: [{ schema: 'public', name: 't', kind: 'table', rowEstimate: 10 }],
    ...overrides,
  });
}

export interface PutBackupOptions {
  /** Dump size in bytes (random content); default 64. */
  readonly size?: number;
  /** Write a verify report beside it. */
  readonly verify?: boolean;
  /** Tag the dump with its tier, as the dump task does (default true). */
  readonly tag?: boolean;
}

/** Writes a complete backup (dump, then manifest, optionally a verify report) through the store. */
export async function putBackup(
  store: BackupStore,
  database: string,
  createdAt: Date,
  options: PutBackupOptions = {},
): Promise<Manifest> {
  const dump = randomBytes(options.size ?? 64);
  const manifest = makeManifest(store.prefix, database, createdAt, dump);
  const keys = keysFor(store.prefix, manifest.id);
  await store.putBytes(keys.dump, dump, options.tag === false ? {} : { tags: { tier: manifest.tier } });
  await store.putBytes(keys.manifest, JSON.stringify(manifest));
  if (options.verify) await store.putBytes(keys.verify, JSON.stringify({ ok: true, backupId: manifest.id }));
  return manifest;
}

/** Writes a dump with no manifest: what an interrupted backup leaves behind. Returns its key. */
export async function putDebris(
  store: BackupStore,
  database: string,
  createdAt: Date,
  size = 32,
): Promise<string> {
  const key = keysFor(store.prefix, backupIdFor(database, createdAt)).dump;
  await store.putBytes(key, randomBytes(size));
  return key;
}

/** Sets a file store object's modification time (its lastModified) to `at`. */
export async function ageFile(store: FileStore, key: string, at: Date): Promise<void> {
  await utimes(join(store.root, key), at, at);
}

/** Memory-backed when the machine has it: the file store fsyncs every object, which a disk makes slow. */
const TEMP_ROOT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(TEMP_ROOT, 'pgbp-t-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A validated config for tests: the given fields over a minimal local stage. */
export function testConfig(raw: Record<string, unknown> = {}): Config {
  return parseConfig({ stage: 'local', store: 'file:///tmp/unused', ...raw }, '(test config)');
}

/** Consecutive daily backups at 02:00 UTC from `from` to `to` inclusive. */
export function dailyDates(from: string, to: string, hour = 2): Date[] {
  const out: Date[] = [];
  const end = new Date(`${to}T00:00:00Z`).getTime();
  for (let t = new Date(`${from}T00:00:00Z`).getTime(); t <= end; t += 86_400_000) {
    out.push(new Date(t + hour * 3_600_000));
  }
  return out;
}
