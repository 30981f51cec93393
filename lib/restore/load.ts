import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { RestoreFailedError } from '../domain/errors.js';
import { throwIfInterrupted } from '../platform/interrupts.js';
import { type ChildExit, cutOffByReader, describeExit, exitedCleanly } from '../platform/processes.js';
import type { ArchiveCounts } from '../postgres/archive-counts.js';
import { type PgRestoreOptions, startPgRestore } from '../postgres/pg-restore.js';
import { libpqEnv } from '../postgres/pg-tools.js';
import { startDecoder } from '../storage/codec.js';
import { readAgainst } from '../storage/store.js';
import { feedCounting } from './archive-checks.js';
import { fetchFailed, type RestoreContext } from './context.js';
import { checkDigest, type Pumped, pump } from './pump.js';
import type { Fetched } from './spool.js';

export interface Streamed {
  readonly pumped: Pumped;
  readonly fetchMs: number;
  readonly counts: ArchiveCounts;
}

function pgRestoreOptions(
  ctx: RestoreContext,
  target: string,
  jobs: number,
  file?: string,
): PgRestoreOptions {
  return {
    connection: { ...ctx.deps.connection, database: target },
    env: ctx.deps.env,
    spawn: ctx.spawn,
    jobs,
    noOwner: ctx.ownership?.noOwner ?? ctx.deps.policy.noOwner,
    noPrivileges: ctx.ownership?.noPrivileges ?? ctx.deps.policy.noPrivileges,
    noTablespaces: ctx.ownership?.noTablespaces ?? false,
    schemas: ctx.request.schemas,
    ...(file ? { file } : {}),
  };
}

function restoreFailed(ctx: RestoreContext, exit: ChildExit, target: string): RestoreFailedError {
  return new RestoreFailedError(`restoring ${ctx.manifest.id} into ${target} failed: ${describeExit(exit)}`);
}

/** Streams the archive from the store into pg_restore (through zstd -d when compressed so), one job. */
export async function streamRestore(ctx: RestoreContext, target: string): Promise<Streamed> {
  const { manifest, deps } = ctx;
  const started = performance.now();
  let source: Readable;
  try {
    source = await deps.store.getStream(manifest.key, readAgainst(manifest).options);
  } catch (error) {
    fetchFailed(ctx, error);
  }
  let restore: ReturnType<typeof startPgRestore>;
  let sink: Writable;
  const zstd = startDecoder(manifest.compression.codec, {
    env: libpqEnv(deps.connection, deps.env),
    spawn: ctx.spawn,
  });
  let fed: Promise<void> | undefined;
  const { counter } = ctx;
  if (zstd) {
    // zstd's output passes through this process on its way to pg_restore, to be counted: the
    // row check needs every table's rows as the archive holds them. Measured, this keeps a
    // verify within its target of plain `zstd -dc | pg_restore`.
    restore = startPgRestore(pgRestoreOptions(ctx, target, 1));
    fed = feedCounting(zstd.stdout as Readable, restore.stdin as Writable, counter);
    fed.catch(() => {}); // read below, once the processes have exited
    sink = zstd.stdin as Writable;
  } else {
    restore = startPgRestore(pgRestoreOptions(ctx, target, 1));
    sink = restore.stdin as Writable;
  }
  let pumped: Pumped;
  try {
    pumped = await pump(source, sink, ctx.onBytes, deps.signal, zstd ? undefined : counter);
    if (pumped.stopped) {
      sink.destroy();
      zstd?.stop();
      restore.stop();
    }
  } catch (error) {
    zstd?.stop();
    restore.stop();
    await Promise.all([zstd?.exited, restore.exited]);
    fetchFailed(ctx, error);
  }
  const fetchMs = performance.now() - started;
  const [zstdExit, restoreExit] = await Promise.all([zstd?.exited, restore.exited]);
  const feedError = await fed?.then(
    () => undefined,
    (e: Error) => e,
  );
  throwIfInterrupted(deps.signal);
  // Corruption first: a damaged archive is why zstd or pg_restore failed, if they did. Then
  // pg_restore, whose exit ends zstd's too. A zstd cut off by a pg_restore that succeeded (one
  // that had read all it needed, e.g. restoring some schemas) lost nothing: the digest of every
  // stored byte matched.
  checkDigest(manifest, pumped);
  if (!exitedCleanly(restoreExit)) throw restoreFailed(ctx, restoreExit, target);
  if (zstdExit && !exitedCleanly(zstdExit) && !cutOffByReader(zstdExit)) {
    throw new RestoreFailedError(`decompressing ${manifest.id} failed: ${describeExit(zstdExit)}`);
  }
  if (feedError) {
    throw new RestoreFailedError(`reading ${manifest.id} as it was restored failed: ${feedError.message}`);
  }
  ctx.warnings.push(...restore.warnings());
  return { pumped, fetchMs, counts: await counter.finish() };
}

/** pg_restore from a spooled file with several jobs. */
export async function fileRestore(
  ctx: RestoreContext,
  target: string,
  file: string,
  jobs: number,
): Promise<void> {
  const restore = startPgRestore(pgRestoreOptions(ctx, target, jobs, file));
  const exit = await restore.exited;
  throwIfInterrupted(ctx.deps.signal);
  if (!exitedCleanly(exit)) throw restoreFailed(ctx, exit, target);
  ctx.warnings.push(...restore.warnings());
}

/**
 * The load step: pg_restore from the spool with its jobs, or from the store's stream with one
 * job; returns how long the fetch took and how many bytes it read.
 */
export async function loadArchive(
  ctx: RestoreContext,
  into: string,
  fetched: Fetched,
): Promise<{ readonly fetchMs: number; readonly bytesFetched: number; readonly counts: ArchiveCounts }> {
  if (fetched.kind === 'spool') {
    await fileRestore(ctx, into, fetched.spool.path, fetched.jobs);
    return {
      fetchMs: fetched.spool.fetchMs,
      bytesFetched: fetched.spool.bytesFetched,
      counts: fetched.spool.counts,
    };
  }
  const streamed = await streamRestore(ctx, into);
  return { fetchMs: streamed.fetchMs, bytesFetched: streamed.pumped.bytes, counts: streamed.counts };
}
