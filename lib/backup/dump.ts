import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Config } from '../config.js';
import { backupIdFor, classifyTier, isKeyableDatabaseName, keysFor } from '../domain/backup-layout.js';
import { DumpFailedError, PipelineError } from '../domain/errors.js';
import { type Codec, MANIFEST_VERSION, type Manifest, parseManifest } from '../domain/manifest.js';
import { redact } from '../domain/redact.js';
import type { CopyOutcome, StoreRole } from '../domain/store-roles.js';
import { interruptionOf, throwIfInterrupted } from '../platform/interrupts.js';
import type { Logger } from '../platform/logger.js';
import {
  type Child,
  type ChildExit,
  ChildFailedError,
  defaultSpawn,
  describeExit,
  exitedCleanly,
  ownFailure,
  type Spawn,
  startChild,
} from '../platform/processes.js';
import {
  type Connection,
  describeConnection,
  libpqEnv,
  onPath,
  serverInfo,
  toolVersion,
} from '../postgres/pg-tools.js';
import { requireToolAtLeastServer } from '../postgres/versions.js';
import { openChildOutput } from '../storage/child-output.js';
import { startEncoder } from '../storage/codec.js';
import { type FanOutResult, openFanOutOutput } from '../storage/fan-out.js';
import { type BackupStore, encryptionOf } from '../storage/store.js';
import { type CapturedGlobals, captureGlobals, storeGlobals } from './globals.js';

export interface DumpRequest {
  readonly database: string;
  readonly connection: Connection;
  readonly store: BackupStore;
  readonly compression: { readonly codec: Codec; readonly level?: number; readonly threads: number };
  readonly storageClass: string;
  /**
   * A second store the same dump is written to (the guide's S3 beside the NAS), read once and
   * fanned out: each store gets its own copy and, once that copy is whole, its own manifest.
   */
  readonly secondary?: { readonly store: BackupStore; readonly storageClass: string };
}

/** A dump's manifest (the primary's, or the secondary's when only that one holds it) and each store's outcome. */
export interface DumpResult {
  readonly manifest: Manifest;
  readonly copies: readonly CopyOutcome[];
}

export interface DumpDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  readonly clock?: () => Date;
  readonly logger: Logger;
  /** Running count of bytes stored, for progress and heartbeats. */
  readonly onProgress?: (bytes: number) => void;
  /**
   * Aborted when the run is interrupted: the processes are stopped, the upload aborted or the
   * temporary file removed, and nothing is stored after it (no object, no manifest).
   */
  readonly signal?: AbortSignal;
}

/** The dump settings of a stage config. */
export function compressionFromConfig(config: Config): DumpRequest['compression'] {
  const level = config.dump.level ?? (config.dump.compression === 'zstd' ? 1 : undefined);
  return {
    codec: config.dump.compression,
    ...(level !== undefined ? { level } : {}),
    threads: config.dump.threads,
  };
}

/** The pipe's processes that exited badly, in the order seen, each with the error it raised. */
type FailedExits = { readonly exit: ChildExit; readonly error: DumpFailedError }[];

/** Resolves once the child has exited cleanly; otherwise records its exit and rejects. */
function cleanExitOf(child: Child, failed: FailedExits): Promise<void> {
  return child.exited.then((exit) => {
    if (exitedCleanly(exit)) return;
    const error = new DumpFailedError(describeExit(exit), { cause: new ChildFailedError(exit) });
    failed.push({ exit, error });
    throw error;
  });
}

/**
 * Streams pg_dump (custom format) through the chosen codec into the store, hashing as it goes,
 * and writes the manifest last. The dump object only completes once every process in the
 * pipe has exited cleanly: a killed pg_dump never leaves an object that looks whole.
 */
export async function runDump(request: DumpRequest, deps: DumpDeps): Promise<Manifest> {
  return (await runDumpToStores(request, deps)).manifest;
}

interface Target {
  readonly role: StoreRole;
  readonly store: BackupStore;
  readonly storageClass: string;
  readonly keys: ReturnType<typeof keysFor>;
}

/** A store's error as a copy outcome carries it. */
function failedCopy(target: Target, error: unknown): CopyOutcome {
  const e = error as Error;
  return {
    role: target.role,
    url: target.store.url,
    status: 'failed',
    error: { name: e?.name ?? 'Error', message: e?.message ?? String(error) },
  };
}

/**
 * {@link runDump} to the primary and, when the request names one, the secondary store, from
 * one pg_dump. A store that fails loses only its copy: the dump lands in the other, and the
 * outcome says which store failed and why (a degraded run). Fails only when no store holds
 * the backup.
 */
export async function runDumpToStores(request: DumpRequest, deps: DumpDeps): Promise<DumpResult> {
  const { database, connection, store, compression } = request;
  const spawn = deps.spawn ?? defaultSpawn;
  const clock = deps.clock ?? (() => new Date());
  const secrets = [connection.password];
  const log = deps.logger.child({ database });
  throwIfInterrupted(deps.signal);
  if (!isKeyableDatabaseName(database)) {
    throw new DumpFailedError(
      `database name ${JSON.stringify(database)} cannot key a backup: use letters, digits, _ . $ - (at most 63)`,
    );
  }
  const env = libpqEnv(connection, deps.env);

  const createdAt = clock();
  createdAt.setUTCMilliseconds(0);
  const id = backupIdFor(database, createdAt);
  const keys = keysFor(store.prefix, id);
  const targets: Target[] = [
    { role: 'primary', store, storageClass: request.storageClass, keys },
    ...(request.secondary
      ? [
          {
            role: 'secondary' as const,
            ...request.secondary,
            keys: keysFor(request.secondary.store.prefix, id),
          },
        ]
      : []),
  ];
  const tier = classifyTier(createdAt);
  const started = Date.now();

  // The keys first: a key that is missing, disabled or not permitted fails the dump before any
  // object or process exists.
  await Promise.all(targets.map((t) => t.store.capabilities.envelope?.ready()));

  const dumpArgs = ['--format=custom', '--no-password', `--dbname=${database}`];
  if (compression.codec === 'gzip') {
    if (compression.level !== undefined) dumpArgs.push(`--compress=${compression.level}`);
  } else {
    dumpArgs.push('--compress=0');
  }
  // The last process of the pipe writes the object: zstd, which may write straight into a file
  // store's temporary file (lib/storage/child-output.ts decides), or pg_dump itself, which on a
  // seekable output goes back to rewrite its table of contents and so always writes into a
  // socket that the store reads from into its own part buffers.
  // With two stores, the output goes through this process once and is fanned out to both.
  const socketFailed = (cause: unknown) => new DumpFailedError((cause as Error).message, { cause });
  const output =
    targets.length === 1
      ? await openChildOutput(
          store,
          keys.dump,
          compression.codec === 'zstd' ? 'sequential' : 'seeking',
          { tags: { tier }, storageClass: request.storageClass },
          socketFailed,
        )
      : await openFanOutOutput(
          targets.map((t) => ({
            store: t.store,
            key: t.keys.dump,
            put: { tags: { tier }, storageClass: t.storageClass },
          })),
          socketFailed,
        );
  const outputEnd = output.childEnd;

  // zstd is started first so that pg_dump can write straight into it through an OS pipe: the
  // uncompressed dump, several times the size of what is stored, never passes through this
  // process.
  const children: Child[] = [];
  const exits: Promise<void>[] = [];
  const failedExits: FailedExits = [];
  const zstd = startEncoder(
    compression.codec,
    { level: compression.level ?? 1, threads: compression.threads },
    { env, spawn, stdout: outputEnd },
  );
  if (zstd) {
    exits.push(cleanExitOf(zstd, failedExits));
    children.push(zstd);
  }
  // pg_dump writes through stdio, whose buffer on a pipe is one page: 200,000 writes and as
  // many wake-ups of the reader per gigabyte. stdbuf (coreutils) gives it a 1 MiB buffer
  // instead, which spares both processes CPU that the server needs on a small machine. Without
  // stdbuf, pg_dump runs as it is.
  const [command, args] = onPath('stdbuf', env)
    ? ['stdbuf', ['-o', '1M', 'pg_dump', ...dumpArgs]]
    : ['pg_dump', dumpArgs];
  const dumper = startChild(command, args, {
    tool: 'pg_dump',
    env,
    spawn,
    stdout: zstd?.stdin ?? outputEnd,
    secrets,
  });
  // Our ends of the pipes close, so each reader sees the end of input exactly when its writer
  // ends; if zstd dies, pg_dump gets EPIPE. Either failure surfaces through the exit codes.
  zstd?.stdin?.destroy();
  output.release();
  exits.unshift(cleanExitOf(dumper, failedExits));
  children.unshift(dumper);
  const stopOnSignal = () => {
    for (const child of children) child.stop();
  };
  deps.signal?.addEventListener('abort', stopOnSignal, { once: true });
  // The server's version and tables, and pg_dump's version, are asked once the dump has
  // started rather than before: nothing is stored unless they pass (the object completes only
  // once they have), and pg_dump itself refuses a server newer than it is.
  const checks = Promise.all([
    serverInfo(connection).catch((cause: unknown) => {
      throw new DumpFailedError(
        `cannot connect to ${describeConnection(connection)}: ${redact((cause as Error).message, secrets)}`,
        { cause },
      );
    }),
    toolVersion('pg_dump', env, spawn).catch((cause: unknown) => {
      throw new DumpFailedError((cause as Error).message, { cause });
    }),
  ]).then(([server, pgDump]) => {
    requireToolAtLeastServer('pg_dump', pgDump, server.version);
    log.info('dump starting', { backupId: id, tier, codec: compression.codec, server: server.version.text });
    return { server, pgDump };
  });

  // What the object waits for before it may complete: every process exited with 0, every check passed.
  const finished = Promise.all([...exits, checks]).then(() => undefined);
  finished.catch(() => {}); // its failures are read where it is awaited, and in the catch below
  const allSettled = Promise.allSettled(exits);

  const hash = createHash('sha256');
  let results: FanOutResult[];
  let server: Awaited<typeof checks>['server'];
  let pgDump: Awaited<typeof checks>['pgDump'];
  // The store holds the whole object: an interruption from here on deletes it.
  let storedWhole = false;
  try {
    const progress = deps.onProgress ? { onProgress: deps.onProgress } : {};
    results =
      'intoFile' in output
        ? [
            {
              ok: true,
              ...(await output.store(finished, hash, {
                ...progress,
                beforeCommit: () => throwIfInterrupted(deps.signal),
              })),
            },
          ]
        : await output.store(finished, hash, progress);
    storedWhole = true;
    throwIfInterrupted(deps.signal);
    // Both have settled by now: `finished` waited for them.
    ({ server, pgDump } = await checks);
  } catch (error) {
    // Which failure to report. A failed check comes first: a wrong password fails pg_dump too,
    // in less plain words and maybe sooner. Then a process that failed on its own, the first in
    // cause rather than in time: the others end by themselves (a broken pipe, the end of input),
    // so they get a moment before the rest are stopped. A process we stop because the store
    // failed is not the cause.
    if (failedExits.length > 0) await Promise.race([allSettled, delay(2000)]);
    const own = ownFailure(failedExits.map((f) => f.exit));
    const ownError = failedExits.find((f) => f.exit === own)?.error;
    for (const child of children) child.stop();
    const [, checkFailure] = await Promise.all([
      allSettled,
      checks.then(
        () => undefined,
        (failure: unknown) => failure as Error,
      ),
    ]);
    await output.abort();
    deps.signal?.removeEventListener('abort', stopOnSignal);
    if (deps.signal?.aborted) {
      if (storedWhole) await deleteCopies(targets, (t) => [t.keys.dump]);
      throw interruptionOf(deps.signal);
    }
    if (checkFailure) throw checkFailure;
    const fromProcess = failedExits.some((f) => f.error === error);
    if (error instanceof PipelineError && !fromProcess) throw error;
    if (ownError) throw ownError;
    // Only broken pipes: the store stopped reading, unless it was a process that ended the stream.
    if (fromProcess) throw error;
    throw new DumpFailedError(
      `storing ${keys.dump} in ${store.url} failed: ${redact((error as Error).message, secrets)}`,
      { cause: error },
    );
  }

  deps.signal?.removeEventListener('abort', stopOnSignal);
  const finishedAt = new Date();
  const sha256 = hash.digest('hex');
  // The cluster globals (roles, memberships, tablespaces), captured once for every copy; without
  // them the dump is no backup, and no copy of it is kept.
  let globals: CapturedGlobals;
  try {
    globals = await captureGlobals({
      backupId: id,
      connection,
      server: server.version,
      env: deps.env,
      spawn,
      clock,
      ...(deps.signal ? { signal: deps.signal } : {}),
    });
  } catch (error) {
    await deleteCopies(targets, (t) => [t.keys.dump]);
    if (deps.signal?.aborted) throw interruptionOf(deps.signal);
    throw error;
  }
  log.info('globals captured', {
    backupId: id,
    roles: globals.fields.roles.length,
    rolePasswords: globals.fields.rolePasswords,
  });
  const copies: CopyOutcome[] = [];
  const manifests: Manifest[] = [];
  for (const [i, target] of targets.entries()) {
    const result = results[i] as FanOutResult;
    if (!result.ok) {
      log.warn('dump not stored in one store', { role: target.role, store: target.store.url });
      copies.push(failedCopy(target, result.error));
      continue;
    }
    // Each store's manifest is written last, only once its own copy is whole.
    try {
      const manifest = await completeCopy(
        target,
        result.bytes,
        deps.signal,
        {
          manifestVersion: MANIFEST_VERSION,
          id,
          database,
          tier,
          createdAt: createdAt.toISOString(),
          finishedAt: finishedAt.toISOString(),
          durationMs: Date.now() - started,
          format: 'custom',
          compression: { codec: compression.codec, level: compression.level ?? null },
          sizeBytes: result.bytes,
          // Of what this store holds: a store that encrypts stored other bytes than were read.
          sha256: result.sha256 ?? sha256,
          serverVersion: server.version.text,
          pgDumpVersion: pgDump.text,
          tables: server.tables,
          // pg_dump's session takes its time zone from PGTZ when set, as every libpq client does.
          dumpSettings: { ...server.settings, timeZone: env.PGTZ || server.settings.timeZone },
        },
        globals,
      );
      manifests.push(manifest);
      copies.push({ role: target.role, url: target.store.url, status: 'stored', key: target.keys.dump });
    } catch (error) {
      if (deps.signal?.aborted) {
        await deleteCopies(targets, (t) => [
          t.keys.dump,
          t.keys.globals,
          t.keys.globalsManifest,
          t.keys.manifest,
        ]);
        throw interruptionOf(deps.signal);
      }
      if (targets.length === 1) throw error;
      copies.push(failedCopy(target, error));
    }
  }
  const manifest = manifests[0];
  if (!manifest) {
    const first = copies[0];
    throw new DumpFailedError(
      `no store holds ${id}: ${copies.map((c) => (c.status === 'failed' ? `${c.role}: ${c.error.message}` : '')).join('; ')}`,
      first?.status === 'failed' ? { cause: first.error } : undefined,
    );
  }
  log.info('dump stored', {
    backupId: id,
    sizeBytes: manifest.sizeBytes,
    durationMs: manifest.durationMs,
    ...(targets.length > 1 ? { stores: copies.map((c) => `${c.role}: ${c.status}`) } : {}),
  });
  return { manifest, copies };
}

/** Removes what the stores hold of an interrupted dump. */
async function deleteCopies(targets: readonly Target[], keysOf: (t: Target) => string[]): Promise<void> {
  await Promise.all(targets.map((t) => t.store.deleteMany(keysOf(t)).catch(() => {})));
}

/**
 * Checks one store's copy (its size as stored) and writes its manifest, with what that store
 * says of the object (storage class, encryption). A copy that fails its check is deleted.
 */
async function completeCopy(
  target: Target,
  bytes: number,
  signal: AbortSignal | undefined,
  fields: Readonly<Record<string, unknown>>,
  globals: CapturedGlobals,
): Promise<Manifest> {
  const { store, keys } = target;
  const stored = await store.head(keys.dump);
  const manifest = parseManifest({
    ...fields,
    key: keys.dump,
    storageClass: stored?.storageClass ?? target.storageClass,
    encryption: await encryptionOf(store, keys.dump, stored?.encryption),
  });
  if (stored?.size !== bytes) {
    await store.deleteMany([keys.dump]);
    throw new DumpFailedError(`stored ${keys.dump} is ${stored?.size ?? 'missing'}, expected ${bytes} bytes`);
  }
  if (signal?.aborted) {
    await store.deleteMany([keys.dump]).catch(() => {});
    throw interruptionOf(signal);
  }
  // The cluster globals go beside this copy before its manifest: a backup that exists has them.
  try {
    await storeGlobals(store, keys, globals);
  } catch (error) {
    await store.deleteMany([keys.dump, keys.globals, keys.globalsManifest]).catch(() => {});
    throw error;
  }
  if (signal?.aborted) {
    await store.deleteMany([keys.dump, keys.globals, keys.globalsManifest]).catch(() => {});
    throw interruptionOf(signal);
  }
  try {
    await store.putBytes(keys.manifest, `${JSON.stringify(manifest, null, 2)}\n`, {
      // No tier tag: lifecycle rules move tagged objects to archive classes, and manifests
      // must stay readable so the catalog can be listed without thawing anything.
      contentType: 'application/json',
    });
  } catch (error) {
    await store.deleteMany([keys.dump, keys.globals, keys.globalsManifest]).catch(() => {});
    throw new DumpFailedError(`writing the manifest ${keys.manifest} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return manifest;
}
