import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RestoreFailedError } from '../domain/errors.js';
import { formatBytes } from '../domain/units.js';
import { throwIfInterrupted } from '../platform/interrupts.js';
import { describeExit, exitedCleanly } from '../platform/processes.js';
import type { ArchiveCounts } from '../postgres/archive-counts.js';
import { type OffsetPlan, writeOffsets } from '../postgres/archive-offsets.js';
import { libpqEnv } from '../postgres/pg-tools.js';
import { startDecoder } from '../storage/codec.js';
import { readAgainst } from '../storage/store.js';
import { archiveCounter } from './archive-checks.js';
import { fetchFailed, type RestoreContext } from './context.js';
import { checkDigest, type Pumped, pump } from './pump.js';

/** Bytes of decompressed archive assumed per stored byte of a zstd backup, to size the spool. */
export const ZSTD_EXPANSION = 4;

/** The archive on local disk, decompressed, for a pg_restore with several jobs. */
export interface Spool {
  readonly path: string;
  readonly bytesFetched: number;
  readonly fetchMs: number;
  /** Each table's rows (and digests) in the archive, read as it was spooled. */
  readonly counts: ArchiveCounts;
  /** Removes the spool; safe to call more than once. */
  remove(): Promise<void>;
}

/**
 * How the archive reaches pg_restore: from a spool with the jobs asked for, or, with one job or
 * when there is no room to spool, from the store's stream with one job (fetched as it restores).
 */
export type Fetched =
  | { readonly kind: 'spool'; readonly jobs: number; readonly spool: Spool }
  | { readonly kind: 'stream'; readonly jobs: number };

/** The fetch step: spools when more than one job is asked for and the disk has room. */
export async function fetchArchive(ctx: RestoreContext, wantedJobs: number): Promise<Fetched> {
  if (wantedJobs <= 1) return { kind: 'stream', jobs: wantedJobs };
  ctx.phase('fetch');
  const started = performance.now();
  const outcome = await spool(ctx);
  if (outcome.kind === 'no-room') {
    ctx.warnings.push(
      `restored with one job from the stream instead of ${wantedJobs} from a spool: ${outcome.reason}`,
    );
    ctx.log.warn('no room to spool', { reason: outcome.reason });
    return { kind: 'stream', jobs: 1 };
  }
  const fetchMs = performance.now() - started;
  return {
    kind: 'spool',
    jobs: wantedJobs,
    spool: {
      path: outcome.path,
      bytesFetched: outcome.pumped.bytes,
      fetchMs,
      counts: outcome.counts,
      remove: () => rm(outcome.dir, { recursive: true, force: true }),
    },
  };
}

type SpoolOutcome =
  | {
      readonly kind: 'spooled';
      readonly path: string;
      readonly dir: string;
      readonly pumped: Pumped;
      readonly counts: ArchiveCounts;
    }
  | { readonly kind: 'no-room'; readonly reason: string };

/**
 * Copies the archive to local disk, decompressed, for a parallel pg_restore that needs to seek.
 * Gives up (and cleans up) when the disk would keep less than the configured headroom, or the
 * spool directory cannot take the file at all, so a restore never fills the disk it runs on;
 * the caller then streams instead. The digest is checked before anything is restored.
 */
async function spool(ctx: RestoreContext): Promise<SpoolOutcome> {
  const { manifest, deps } = ctx;
  const base = deps.policy.spoolDir ?? tmpdir();
  const headroom = deps.policy.spoolHeadroom;
  const expansion = manifest.compression.codec === 'zstd' ? ZSTD_EXPANSION : 1;
  let free: number;
  let dir: string;
  try {
    const fs = await statfs(base);
    free = fs.bavail * fs.bsize;
    const needed = manifest.sizeBytes * expansion + headroom;
    if (free < needed) {
      return {
        kind: 'no-room',
        reason: `${formatBytes(free)} free in ${base}, ${formatBytes(needed)} needed (archive ×${expansion} + ${formatBytes(headroom)} headroom)`,
      };
    }
    dir = await mkdtemp(join(base, 'pgbp-spool-'));
  } catch (error) {
    return { kind: 'no-room', reason: `cannot spool in ${base}: ${(error as Error).message}` };
  }
  const limit = free - headroom;
  const path = join(dir, `${manifest.id}.dump`);
  // Why the spool was given up, once it was: the caller streams instead.
  const stop = new AbortController();
  let stopReason = '';
  const giveUp = (reason: string) => {
    if (!stop.signal.aborted) {
      stopReason = reason;
      stop.abort();
    }
  };
  let written = 0;
  // Reads the archive as it goes by, to fill in the data offsets a piped pg_dump leaves unset
  // and to count each table's rows. A spool given up is streamed instead, and counted afresh.
  const offsets = archiveCounter(ctx.depth);
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      written += chunk.length;
      if (written > limit) {
        giveUp(
          `the decompressed archive outgrew the room in ${base} (more than ${formatBytes(limit)}, keeping ${formatBytes(headroom)} free)`,
        );
        done(new Error('spool limit reached'));
      } else {
        offsets.push(chunk);
        done(null, chunk);
      }
    },
  });
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  const toFile = pipeline(meter, file).then(
    () => undefined,
    (e: Error) => {
      giveUp(`writing the spool in ${base} failed: ${e.message}`);
      return e;
    },
  );
  let zstd: ReturnType<typeof startDecoder>;
  let source: Readable | undefined;
  try {
    source = await deps.store.getStream(manifest.key, readAgainst(manifest).options);
    let sink: Writable = meter;
    const z = startDecoder(manifest.compression.codec, {
      env: libpqEnv(deps.connection, deps.env),
      spawn: ctx.spawn,
    });
    zstd = z;
    if (z) {
      const out = z.stdout as Readable;
      out.pipe(meter);
      out.on('error', (e) => meter.destroy(e));
      // Once the file side stops taking data, zstd would block on its output and the fetch on
      // zstd: stop it, the spool is lost anyway.
      stop.signal.addEventListener('abort', () => z.stop());
      deps.signal?.addEventListener('abort', () => z.stop(), { once: true });
      sink = z.stdin as Writable;
    }
    const halt = deps.signal ? AbortSignal.any([stop.signal, deps.signal]) : stop.signal;
    const pumped = await pump(source, sink, ctx.onBytes, halt).catch((e: unknown) => fetchFailed(ctx, e));
    if (pumped.stopped) sink.destroy();
    const zstdExit = zstd ? await zstd.exited : undefined;
    const fileError = await toFile;
    if (pumped.stopped || halt.aborted) {
      await rm(dir, { recursive: true, force: true });
      throwIfInterrupted(deps.signal);
      return { kind: 'no-room', reason: stopReason };
    }
    checkDigest(manifest, pumped);
    if (zstdExit && !exitedCleanly(zstdExit)) {
      throw new RestoreFailedError(`decompressing ${manifest.id} failed: ${describeExit(zstdExit)}`);
    }
    if (fileError)
      throw new RestoreFailedError(`spooling ${manifest.id} to ${dir} failed: ${fileError.message}`);
    await seekable(ctx, path, offsets.offsets());
    return { kind: 'spooled', path, dir, pumped, counts: await offsets.finish() };
  } catch (error) {
    source?.destroy();
    if (zstd) {
      zstd.stop();
      await zstd.exited;
    }
    file.destroy();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Fills in the spooled archive's data offsets, as pg_dump does when it writes to a file, so each
 * pg_restore worker seeks to its table's data instead of reading the archive up to it. An archive
 * this cannot read is restored as it is, with a warning.
 */
async function seekable(ctx: RestoreContext, path: string, plan: OffsetPlan): Promise<void> {
  const unchanged = (reason: string) => {
    ctx.warnings.push(
      `data offsets not filled in (${reason}): each pg_restore job reads the archive up to its table's data`,
    );
    ctx.log.warn('data offsets not filled in', { reason });
  };
  if (plan.kind === 'unsupported') return unchanged(plan.reason);
  try {
    if (!(await writeOffsets(path, plan))) unchanged('the spool does not start with the bytes read');
  } catch (cause) {
    throw new RestoreFailedError(
      `filling in the data offsets of ${ctx.manifest.id} in ${path} failed: ${(cause as Error).message}`,
      { cause },
    );
  }
}
