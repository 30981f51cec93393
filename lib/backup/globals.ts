import { createHash } from 'node:crypto';
import type { BackupKeys } from '../domain/backup-layout.js';
import { DumpFailedError } from '../domain/errors.js';
import {
  GLOBALS_MANIFEST_VERSION,
  type GlobalsManifest,
  globalsInventory,
  parseGlobals,
  parseGlobalsManifest,
} from '../domain/globals.js';
import { redact } from '../domain/redact.js';
import { throwIfInterrupted } from '../platform/interrupts.js';
import { defaultSpawn, describeExit, exitedCleanly, type Spawn, startChild } from '../platform/processes.js';
import {
  type Connection,
  describeConnection,
  libpqEnv,
  pgClient,
  toolVersion,
} from '../postgres/pg-tools.js';
import { requireToolAtLeastServer, type Version } from '../postgres/versions.js';
import { type BackupStore, encryptionOf } from '../storage/store.js';

export interface GlobalsCapture {
  readonly backupId: string;
  readonly connection: Connection;
  readonly server: Version;
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  readonly clock: () => Date;
  readonly signal?: AbortSignal;
}

/** The globals as captured once, ready to be stored beside each copy of the dump. */
export interface CapturedGlobals {
  readonly bytes: Buffer;
  /** The manifest's fields that do not depend on the store. */
  readonly fields: Omit<GlobalsManifest, 'key' | 'storageClass' | 'encryption'>;
}

/**
 * Whether the connecting user can read role passwords: pg_dumpall reads them from pg_authid,
 * which only superusers may read (not RDS's master user, for one).
 */
async function canReadPasswords(connection: Connection, secrets: readonly (string | undefined)[]) {
  const client = await pgClient(connection);
  try {
    await client.connect();
    const r = await client.query<{ readable: boolean }>(
      `select has_table_privilege('pg_catalog.pg_authid', 'select') as readable`,
    );
    return r.rows[0]?.readable === true;
  } catch (cause) {
    throw new DumpFailedError(
      `cannot connect to ${describeConnection(connection)}: ${redact((cause as Error).message, secrets)}`,
      { cause },
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/** pg_dumpall's output, whole: a few kilobytes, however many roles. */
async function runPgDumpall(
  args: string[],
  capture: GlobalsCapture,
  secrets: readonly (string | undefined)[],
) {
  const child = startChild('pg_dumpall', args, {
    env: libpqEnv(capture.connection, capture.env),
    spawn: capture.spawn ?? defaultSpawn,
    stdout: 'pipe',
    secrets,
  });
  const stop = () => child.stop();
  capture.signal?.addEventListener('abort', stop, { once: true });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => chunks.push(d));
  const exit = await child.exited;
  capture.signal?.removeEventListener('abort', stop);
  throwIfInterrupted(capture.signal);
  if (!exitedCleanly(exit))
    throw new DumpFailedError(`capturing the cluster globals failed: ${describeExit(exit)}`);
  return Buffer.concat(chunks);
}

/**
 * Captures the cluster's globals (`pg_dumpall --globals-only`: roles, memberships, role
 * settings, tablespaces), once per dump however many stores it goes to. Role passwords are left
 * out (`--no-role-passwords`) when the connecting user cannot read them, and the manifest says
 * which it was. The bytes hold password hashes: nothing here logs or reports their text.
 */
export async function captureGlobals(capture: GlobalsCapture): Promise<CapturedGlobals> {
  const { connection } = capture;
  const secrets = [connection.password];
  const spawn = capture.spawn ?? defaultSpawn;
  const env = libpqEnv(connection, capture.env);
  const createdAt = capture.clock();
  createdAt.setUTCMilliseconds(0);
  const [passwords, tool] = await Promise.all([
    canReadPasswords(connection, secrets),
    toolVersion('pg_dumpall', env, spawn).catch((cause: unknown) => {
      throw new DumpFailedError(`capturing the cluster globals: ${(cause as Error).message}`, { cause });
    }),
  ]);
  requireToolAtLeastServer('pg_dumpall', tool, capture.server);
  const args = [
    '--globals-only',
    '--no-password',
    `--database=${connection.database}`,
    ...(passwords ? [] : ['--no-role-passwords']),
  ];
  const bytes = await runPgDumpall(args, capture, secrets);
  const inventory = globalsInventory(parseGlobals(bytes.toString('utf8')));
  return {
    bytes,
    fields: {
      manifestVersion: GLOBALS_MANIFEST_VERSION,
      kind: 'globals',
      backupId: capture.backupId,
      database: connection.database,
      createdAt: createdAt.toISOString(),
      sizeBytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      serverVersion: capture.server.text,
      pgDumpallVersion: tool.text,
      rolePasswords: passwords ? 'included' : 'omitted',
      roles: inventory.roles,
      tablespaces: inventory.tablespaces,
    },
  };
}

/**
 * Stores captured globals in one store, beside that store's copy of the dump: the object, its
 * size checked, then its manifest with what the store says of the object (storage class,
 * encryption). The caller writes the backup's own manifest after it.
 */
export async function storeGlobals(
  store: BackupStore,
  keys: Pick<BackupKeys, 'globals' | 'globalsManifest'>,
  captured: CapturedGlobals,
): Promise<GlobalsManifest> {
  const { bytes } = captured;
  try {
    await store.putBytes(keys.globals, bytes, { contentType: 'application/sql' });
  } catch (cause) {
    throw new DumpFailedError(`storing ${keys.globals} in ${store.url} failed: ${(cause as Error).message}`, {
      cause,
    });
  }
  const stored = await store.head(keys.globals);
  // An encrypted copy is larger than the script by the message's header and tags: its size is
  // then the store's to check, and the manifest's size and digest are the script's, as read back.
  const envelope = await store.capabilities.envelope?.describe(keys.globals);
  if (!stored || (!envelope && stored.size !== bytes.length)) {
    throw new DumpFailedError(
      `stored ${keys.globals} is ${stored?.size ?? 'missing'}, expected ${bytes.length} bytes`,
    );
  }
  const manifest = parseGlobalsManifest({
    ...captured.fields,
    key: keys.globals,
    storageClass: stored.storageClass,
    encryption: await encryptionOf(store, keys.globals, stored.encryption),
  });
  try {
    await store.putBytes(keys.globalsManifest, `${JSON.stringify(manifest, null, 2)}\n`, {
      contentType: 'application/json',
    });
  } catch (cause) {
    throw new DumpFailedError(`writing ${keys.globalsManifest} failed: ${(cause as Error).message}`, {
      cause,
    });
  }
  return manifest;
}
