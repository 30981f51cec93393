import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { locateBackup } from '../catalog/backups.js';
import { archivedBackupError } from '../catalog/thaw-state.js';
import { storeVerifyReport } from '../catalog/verify-reports.js';
import type { Assertion, RestorePolicy } from '../config.js';
import {
  CorruptBackupError,
  InvalidRestoreRequestError,
  PipelineError,
  RestoreCheckFailedError,
  RestoreFailedError,
  VersionMismatchError,
} from '../domain/errors.js';
import type { Manifest } from '../domain/manifest.js';
import { redact } from '../domain/redact.js';
import {
  type CheckResult,
  checkRowCounts,
  checkTablesPresent,
  describeFailedChecks,
  evaluateAssertion,
  leftoverScratch,
  type ManifestTable,
  type QueryOutcome,
  scratchDatabaseName,
  scratchSuffix,
  tableKey,
  tablesInScope,
} from '../domain/restore-checks.js';
import { formatBytes } from '../domain/units.js';
import { REPORT_VERSION, type RestoreReport } from '../domain/verify-report.js';
import { throwIfInterrupted } from '../platform/interrupts.js';
import type { Logger } from '../platform/logger.js';
import {
  type ChildExit,
  cutOffByReader,
  defaultSpawn,
  describeExit,
  exitedCleanly,
  type Spawn,
} from '../platform/processes.js';
import {
  archiveSchemas,
  OffsetCollector,
  readTocFrom,
  UnsupportedArchiveError,
  writeOffsets,
} from '../postgres/custom-archive.js';
import {
  createEmptyDatabase,
  createSchemas,
  databaseExists,
  databasesStartingWith,
  dropDatabase,
  type PgRestoreOptions,
  serverVersion,
  startPgRestore,
  swapDatabase,
} from '../postgres/pg-restore.js';
import {
  type Connection,
  describeConnection,
  libpqEnv,
  pgClient,
  quoteIdent,
  toolVersion,
} from '../postgres/pg-tools.js';
import { parseVersion, requireToolAtLeastServer } from '../postgres/versions.js';
import type { BackupStore } from '../storage/store.js';
import { startZstd } from '../storage/zstd.js';
import { type RestoreRequest, selectorOf } from './request.js';
import { existingTargetError } from './target-guard.js';

export type RestorePhase = 'find' | 'fetch' | 'restore' | 'checks' | 'cleanup';

export interface RestoreDeps {
  readonly store: BackupStore;
  /** Where to restore: the server of this connection; its `database` is not used. */
  readonly connection: Connection;
  readonly policy: RestorePolicy;
  readonly assertions: readonly Assertion[];
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
  readonly spawn?: Spawn;
  readonly clock?: () => Date;
  /** Suffix for scratch and replacement database names. */
  readonly random?: () => string;
  /** The database used to create and drop others; `postgres` unless told. */
  readonly maintenanceDatabase?: string;
  readonly onPhase?: (phase: RestorePhase) => void;
  /** Running count of bytes read from the store. */
  readonly onProgress?: (bytes: number) => void;
  /**
   * Aborted when the run is interrupted: reading stops, the processes are stopped, the spool
   * and the databases this run created are removed, and no report is written.
   */
  readonly signal?: AbortSignal;
}

/** Bytes of decompressed archive assumed per stored byte of a zstd backup, to size the spool. */
export const ZSTD_EXPANSION = 4;

const ASSERTION_TIMEOUT = '10min';

function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/** Waits until a writable can take more, or is gone. */
function drained(sink: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('error', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('error', done);
    sink.on('close', done);
  });
}

interface Pumped {
  readonly bytes: number;
  readonly sha256: string;
  /** The stream was stopped early by `stop` (the digest is then of a prefix). */
  readonly stopped: boolean;
}

/**
 * Reads the whole stored object, hashing and counting every byte, and feeds it to `sink` for as
 * long as the sink takes it. A sink that dies (pg_restore or zstd choked on a damaged archive)
 * does not stop the reading: the digest of the whole object is what tells corruption apart from
 * a failed restore.
 */
async function pump(
  source: Readable,
  sink: Writable,
  onBytes: (bytes: number) => void,
  stop?: AbortSignal,
): Promise<Pumped> {
  const hash = createHash('sha256');
  let bytes = 0;
  let alive = true;
  const dead = () => {
    alive = false;
  };
  sink.on('error', dead);
  sink.on('close', dead);
  try {
    for await (const chunk of source) {
      if (stop?.aborted) {
        source.destroy();
        return { bytes, sha256: hash.digest('hex'), stopped: true };
      }
      const buf = chunk as Buffer;
      hash.update(buf);
      bytes += buf.length;
      onBytes(bytes);
      if (alive && !sink.write(buf)) await drained(sink);
    }
    if (alive) sink.end();
    return { bytes, sha256: hash.digest('hex'), stopped: false };
  } catch (error) {
    sink.destroy();
    throw error;
  } finally {
    sink.off('error', dead);
    sink.off('close', dead);
  }
}

function checkDigest(manifest: Manifest, pumped: Pumped): void {
  if (pumped.bytes !== manifest.sizeBytes) {
    throw new CorruptBackupError(
      `backup ${manifest.id} is damaged: read ${pumped.bytes} bytes, the manifest records ${manifest.sizeBytes}; nothing was restored`,
    );
  }
  if (pumped.sha256 !== manifest.sha256) {
    throw new CorruptBackupError(
      `backup ${manifest.id} is damaged: its SHA-256 is ${pumped.sha256}, the manifest records ${manifest.sha256}; nothing was restored`,
    );
  }
}

interface RestoreContext {
  readonly request: RestoreRequest;
  readonly deps: RestoreDeps;
  readonly manifest: Manifest;
  readonly log: Logger;
  readonly spawn: Spawn;
  readonly secrets: readonly (string | undefined)[];
  readonly warnings: string[];
}

function fetchFailed(ctx: RestoreContext, error: unknown): never {
  if (error instanceof PipelineError) throw error;
  throw new RestoreFailedError(
    `reading ${ctx.manifest.key} from ${ctx.deps.store.url} failed: ${redact((error as Error).message, ctx.secrets)}`,
    { cause: error },
  );
}

type SpoolOutcome =
  | { readonly kind: 'spooled'; readonly path: string; readonly dir: string; readonly pumped: Pumped }
  | { readonly kind: 'no-room'; readonly reason: string };

/**
 * Copies the archive to local disk, decompressed, for a parallel pg_restore that needs to seek.
 * Gives up (and cleans up) when the disk would keep less than the configured headroom, or the
 * spool directory cannot take the file at all, so a restore never fills the disk it runs on;
 * the caller then streams instead. The digest is checked before anything is restored.
 */
async function spool(ctx: RestoreContext, onBytes: (bytes: number) => void): Promise<SpoolOutcome> {
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
  // Reads the archive as it goes by, to fill in the data offsets a piped pg_dump leaves unset.
  const offsets = new OffsetCollector();
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
  let zstd: ReturnType<typeof startZstd> | undefined;
  let source: Readable | undefined;
  try {
    source = await deps.store.getStream(manifest.key);
    let sink: Writable = meter;
    if (manifest.compression.codec === 'zstd') {
      const z = startZstd('decompress', { env: libpqEnv(deps.connection, deps.env), spawn: ctx.spawn });
      zstd = z;
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
    const pumped = await pump(source, sink, onBytes, halt).catch((e: unknown) => fetchFailed(ctx, e));
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
    await seekable(ctx, path, offsets);
    return { kind: 'spooled', path, dir, pumped };
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
async function seekable(ctx: RestoreContext, path: string, offsets: OffsetCollector): Promise<void> {
  const plan = offsets.finish();
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

/**
 * The schemas the backup holds, from its archive's table of contents: the first bytes of the
 * object, decompressed when it is zstd, read no further. Undefined when they cannot be read; the
 * restore then goes on, and its digest check tells a damaged backup apart.
 */
async function schemasInBackup(ctx: RestoreContext): Promise<string[] | undefined> {
  const { manifest, deps } = ctx;
  let source: Readable;
  try {
    source = await deps.store.getStream(manifest.key);
  } catch (error) {
    fetchFailed(ctx, error);
  }
  let zstd: ReturnType<typeof startZstd> | undefined;
  try {
    let chunks: AsyncIterable<Buffer> = source;
    if (manifest.compression.codec === 'zstd') {
      zstd = startZstd('decompress', { env: libpqEnv(deps.connection, deps.env), spawn: ctx.spawn });
      // Stopping once the TOC is read cuts the pipe: the error that follows is expected.
      pipeline(source, zstd.stdin as Writable).catch(() => {});
      chunks = zstd.stdout as Readable;
    }
    return archiveSchemas(await readTocFrom(chunks));
  } catch (error) {
    if (!(error instanceof UnsupportedArchiveError)) fetchFailed(ctx, error);
    ctx.log.warn('schemas of the archive not read', { reason: error.message });
    return undefined;
  } finally {
    source.destroy();
    if (zstd) {
      zstd.stdout?.destroy();
      zstd.stop();
      await zstd.exited;
    }
  }
}

interface Restored {
  readonly pumped: Pumped;
  readonly fetchMs: number;
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
    noOwner: ctx.deps.policy.noOwner,
    noPrivileges: ctx.deps.policy.noPrivileges,
    schemas: ctx.request.schemas,
    ...(file ? { file } : {}),
  };
}

function restoreFailed(ctx: RestoreContext, exit: ChildExit, target: string): RestoreFailedError {
  return new RestoreFailedError(`restoring ${ctx.manifest.id} into ${target} failed: ${describeExit(exit)}`);
}

/** Streams the archive from the store into pg_restore (through zstd -d when compressed so), one job. */
async function streamRestore(
  ctx: RestoreContext,
  target: string,
  onBytes: (n: number) => void,
): Promise<Restored> {
  const { manifest, deps } = ctx;
  const started = performance.now();
  let source: Readable;
  try {
    source = await deps.store.getStream(manifest.key);
  } catch (error) {
    fetchFailed(ctx, error);
  }
  let restore: ReturnType<typeof startPgRestore>;
  let sink: Writable;
  let zstd: ReturnType<typeof startZstd> | undefined;
  if (manifest.compression.codec === 'zstd') {
    const z = startZstd('decompress', { env: libpqEnv(deps.connection, deps.env), spawn: ctx.spawn });
    zstd = z;
    // zstd's output goes straight into pg_restore through an OS pipe: a gigabyte less to copy
    // through this process. Closing our end of that pipe leaves it to the two of them, so zstd
    // learns (SIGPIPE) when pg_restore stops reading.
    const out = z.stdout as Readable;
    restore = startPgRestore({ ...pgRestoreOptions(ctx, target, 1), stdinFrom: out });
    out.destroy();
    sink = z.stdin as Writable;
  } else {
    restore = startPgRestore(pgRestoreOptions(ctx, target, 1));
    sink = restore.stdin as Writable;
  }
  let pumped: Pumped;
  try {
    pumped = await pump(source, sink, onBytes, deps.signal);
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
  ctx.warnings.push(...restore.warnings());
  return { pumped, fetchMs };
}

/** pg_restore from a spooled file with several jobs. */
async function fileRestore(ctx: RestoreContext, target: string, file: string, jobs: number): Promise<void> {
  const restore = startPgRestore(pgRestoreOptions(ctx, target, jobs, file));
  const exit = await restore.exited;
  throwIfInterrupted(ctx.deps.signal);
  if (!exitedCleanly(exit)) throw restoreFailed(ctx, exit, target);
  ctx.warnings.push(...restore.warnings());
}

interface CheckOutcome {
  readonly checks: CheckResult[];
  readonly tables: RestoreReport['tables'];
}

export async function runAssertion(client: import('pg').Client, assertion: Assertion): Promise<QueryOutcome> {
  try {
    // Read only, so an assertion cannot change what it checks; bounded, so a bad one cannot hang the drill.
    await client.query('begin read only');
    await client.query(`set local statement_timeout = '${ASSERTION_TIMEOUT}'`);
    const result = await client.query({ text: assertion.sql, rowMode: 'array' });
    const last = Array.isArray(result) ? result[result.length - 1] : result;
    const row = (last?.rows?.[0] as unknown[] | undefined) ?? undefined;
    return { value: row ? row[0] : null };
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    await client.query('rollback').catch(() => {});
  }
}

/**
 * The checks of a restored database: it answers a query, every table in scope is there, row
 * counts are near the manifest's estimates, and the configured assertions hold.
 */
async function checkRestored(ctx: RestoreContext, target: string): Promise<CheckOutcome> {
  const { manifest, deps, request } = ctx;
  const client = await pgClient({ ...deps.connection, database: target });
  const checks: CheckResult[] = [];
  try {
    await client.connect();
    const one = await client.query<{ one: number }>('select 1 as one');
    checks.push({
      name: 'the restored database answers a query',
      kind: 'connect',
      passed: one.rows[0]?.one === 1,
      query: 'select 1',
      value: one.rows[0]?.one ?? null,
    });
  } catch (error) {
    await client.end().catch(() => {});
    checks.push({
      name: 'the restored database answers a query',
      kind: 'connect',
      passed: false,
      query: 'select 1',
      value: redact((error as Error).message, ctx.secrets),
    });
    return { checks, tables: [] };
  }
  try {
    const inScope = tablesInScope<ManifestTable>(manifest.tables, request.schemas);
    const present = await client.query<{ schema: string; name: string; oid: string }>(
      `select n.nspname as schema, c.relname as name, c.oid::text as oid
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')`,
    );
    const oids = new Map(present.rows.map((r) => [tableKey(r), r.oid]));
    checks.push(checkTablesPresent(inScope, new Set(oids.keys())));

    const rows = new Map<string, number>();
    const leaves = inScope.filter((t) => t.kind === 'table' && oids.has(tableKey(t)));
    for (const t of leaves) {
      const r = await client.query<{ n: string }>(
        `select count(*) as n from only ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
      );
      rows.set(tableKey(t), Number(r.rows[0]?.n ?? 0));
    }
    for (const t of inScope.filter((x) => x.kind === 'partitioned table' && oids.has(tableKey(x)))) {
      // A partitioned table holds its partitions' rows: add up the leaves, counted once each.
      const tree = await client.query<{ schema: string; name: string }>(
        `select n.nspname as schema, c.relname as name
           from pg_partition_tree($1::oid) p join pg_class c on c.oid = p.relid
           join pg_namespace n on n.oid = c.relnamespace
          where p.isleaf`,
        [oids.get(tableKey(t))],
      );
      let total = 0;
      for (const leaf of tree.rows) {
        let n = rows.get(tableKey(leaf));
        if (n === undefined) {
          const r = await client.query<{ n: string }>(
            `select count(*) as n from only ${quoteIdent(leaf.schema)}.${quoteIdent(leaf.name)}`,
          );
          n = Number(r.rows[0]?.n ?? 0);
        }
        total += n;
      }
      rows.set(tableKey(t), total);
    }
    checks.push(checkRowCounts(inScope, rows, deps.policy.rowTolerance));

    if (request.schemas.length > 0 && deps.assertions.length > 0) {
      ctx.warnings.push(
        `${deps.assertions.length} configured assertion(s) not run: a restore of some schemas only is not the database they describe`,
      );
    } else {
      for (const assertion of deps.assertions) {
        checks.push(evaluateAssertion(assertion, await runAssertion(client, assertion)));
      }
    }
    const tables = inScope.map((t) => ({
      schema: t.schema,
      name: t.name,
      kind: t.kind,
      rows: rows.get(tableKey(t)) ?? null,
      estimate: t.rowEstimate,
    }));
    return { checks, tables };
  } catch (error) {
    // A check that cannot run has not passed; the report says what stopped it.
    checks.push({
      name: 'the checks could run to the end',
      kind: 'connect',
      passed: false,
      value: redact((error as Error).message, ctx.secrets),
    });
    return { checks, tables: [] };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Drops the scratch databases that verifies of this database left when they were killed; returns
 * their names. Only this database's: a verify answers for its own leftovers.
 */
async function dropLeftoverScratch(
  deps: RestoreDeps,
  maintenance: string,
  database: string,
  now: Date,
  log: Logger,
): Promise<string[]> {
  const sample = scratchDatabaseName(database, scratchSuffix(now, '00000000'));
  const prefix = sample.slice(0, sample.lastIndexOf('_') + 1);
  const ours = (await databasesStartingWith(deps.connection, maintenance, prefix)).filter(
    (name) => name.length === sample.length,
  );
  const leftovers = leftoverScratch(ours, now);
  for (const name of leftovers) {
    await dropDatabase(deps.connection, maintenance, name);
    log.warn('dropped a leftover scratch database', { scratch: name });
  }
  return leftovers;
}

function newSuffix(deps: RestoreDeps): string {
  return deps.random ? deps.random() : randomBytes(4).toString('hex');
}

/**
 * Restores one backup and checks the result. `verify` restores into a scratch database that is
 * dropped afterwards whatever happened, and stores the report beside the backup; `restore`
 * creates the target (or, asked to replace one, restores beside it and swaps only once the new
 * one passed its checks).
 *
 * Everything that can be refused is refused before anything is created. A backup whose bytes do
 * not match its manifest is CorruptBackupError, and whatever this run created is dropped.
 */
export async function runRestore(request: RestoreRequest, deps: RestoreDeps): Promise<RestoreReport> {
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const spawn = deps.spawn ?? defaultSpawn;
  const maintenance = deps.maintenanceDatabase ?? 'postgres';
  const secrets = [deps.connection.password];
  const phase = (p: RestorePhase) => deps.onPhase?.(p);
  const onBytes = (n: number) => deps.onProgress?.(n);

  throwIfInterrupted(deps.signal);
  phase('find');
  const { backup, object, archived } = await locateBackup(deps.store, request.database, selectorOf(request));
  const { manifest } = backup;
  const log = deps.logger.child({ database: request.database, backupId: manifest.id, mode: request.mode });
  if (archived) throw archivedBackupError(manifest.id, request.database, object);

  const env = libpqEnv(deps.connection, deps.env);
  let tool: Awaited<ReturnType<typeof toolVersion>>;
  try {
    tool = await toolVersion('pg_restore', env, spawn);
  } catch (cause) {
    throw new RestoreFailedError(redact((cause as Error).message, secrets), { cause });
  }
  let server: Awaited<ReturnType<typeof serverVersion>>;
  try {
    server = await serverVersion(deps.connection, maintenance);
  } catch (cause) {
    throw new RestoreFailedError(
      `cannot connect to ${describeConnection({ ...deps.connection, database: maintenance })}: ${redact((cause as Error).message, secrets)}`,
      { cause },
    );
  }
  requireToolAtLeastServer('pg_restore', tool, server);
  const madeBy = parseVersion(manifest.pgDumpVersion);
  if (madeBy && tool.major < madeBy.major) {
    throw new VersionMismatchError(
      `pg_restore ${tool.text} cannot read an archive made by pg_dump ${manifest.pgDumpVersion}; install client tools of major version ${madeBy.major} or newer`,
    );
  }

  // A verify that was killed (a stopped container) never dropped its scratch database; the next
  // one does, once it is old enough that no restore can still be using it. The wall clock, not
  // deps.clock: every verify on this server reads the others' names by its own wall clock.
  const now = new Date();
  const swept =
    request.mode === 'verify' ? await dropLeftoverScratch(deps, maintenance, request.database, now, log) : [];
  const target =
    request.mode === 'verify'
      ? scratchDatabaseName(request.database, scratchSuffix(now, newSuffix(deps)))
      : (request.targetDatabase as string);
  const exists = await databaseExists(deps.connection, maintenance, target);
  if (exists && !(request.mode === 'restore' && request.replace)) throw existingTargetError(target);
  // Replacing: restore beside the old database, which stays untouched until the new one passed.
  const restoreInto = exists ? `pgbp_replace_${newSuffix(deps)}${newSuffix(deps)}` : target;

  const warnings: string[] = swept.map(
    (name) => `dropped ${name}, a scratch database a killed verify left behind`,
  );
  const ctx: RestoreContext = { request, deps, manifest, log, spawn, secrets, warnings };
  if (request.schemas.length > 0) {
    const inBackup = await schemasInBackup(ctx);
    const missing = inBackup ? request.schemas.filter((s) => !inBackup.includes(s)) : [];
    if (inBackup && missing.length > 0) {
      throw new InvalidRestoreRequestError(
        `schemas: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in backup ${manifest.id}, whose schemas are ${inBackup.join(', ')}`,
      );
    }
  }
  const withTables = new Set(manifest.tables.map((t) => t.schema));
  for (const s of request.schemas) {
    if (!withTables.has(s)) warnings.push(`schema ${s} has no tables in the backup's manifest`);
  }

  const wantedJobs = request.jobs ?? deps.policy.jobs;
  let jobs = wantedJobs;
  let spooled: Extract<SpoolOutcome, { kind: 'spooled' }> | undefined;
  let created = false;
  let swapping = false;
  let swapped = false;
  let fetchMs = 0;
  let restoreMs = 0;
  let bytesFetched = 0;
  log.info('restore starting', { target, restoreInto, jobs: wantedJobs, codec: manifest.compression.codec });

  try {
    if (wantedJobs > 1) {
      phase('fetch');
      const tf = performance.now();
      const outcome = await spool(ctx, onBytes);
      fetchMs = performance.now() - tf;
      if (outcome.kind === 'spooled') {
        spooled = outcome;
        bytesFetched = outcome.pumped.bytes;
      } else {
        jobs = 1;
        warnings.push(
          `restored with one job from the stream instead of ${wantedJobs} from a spool: ${outcome.reason}`,
        );
        log.warn('no room to spool', { reason: outcome.reason });
      }
    }

    throwIfInterrupted(deps.signal);
    phase('restore');
    const tr = performance.now();
    try {
      await createEmptyDatabase(deps.connection, maintenance, restoreInto);
    } catch (cause) {
      if (cause instanceof PipelineError) throw cause;
      throw new RestoreFailedError(
        `cannot create the database ${restoreInto}: ${redact((cause as Error).message, secrets)}`,
        { cause },
      );
    }
    created = true;
    await createSchemas({ ...deps.connection, database: restoreInto }, request.schemas);
    if (spooled) {
      await fileRestore(ctx, restoreInto, spooled.path, jobs);
    } else {
      const streamed = await streamRestore(ctx, restoreInto, onBytes);
      fetchMs = streamed.fetchMs;
      bytesFetched = streamed.pumped.bytes;
    }
    restoreMs = performance.now() - tr;
    log.info('restored', { restoreSeconds: seconds(restoreMs), bytesFetched });

    throwIfInterrupted(deps.signal);
    phase('checks');
    const tc = performance.now();
    const { checks, tables } = await checkRestored(ctx, restoreInto);
    const checksMs = performance.now() - tc;
    const passed = checks.every((c) => c.passed);
    // Nothing is swapped in or written after an interruption.
    throwIfInterrupted(deps.signal);

    if (restoreInto !== target && passed) {
      try {
        swapping = true;
        await swapDatabase(deps.connection, maintenance, restoreInto, target);
        swapped = true;
      } catch (cause) {
        throw new RestoreFailedError(
          `backup ${manifest.id} restored and checked in ${restoreInto}, but putting it in place of ${target} failed (${redact((cause as Error).message, secrets)}); the restored data is kept in ${restoreInto}`,
          { cause },
        );
      }
    }
    const report: RestoreReport = {
      reportVersion: REPORT_VERSION,
      backupId: manifest.id,
      database: request.database,
      mode: request.mode,
      target,
      passed,
      startedAt: startedAt.toISOString(),
      finishedAt: clock().toISOString(),
      timings: {
        fetchSeconds: seconds(fetchMs),
        restoreSeconds: seconds(restoreMs),
        checksSeconds: seconds(checksMs),
      },
      recoverySeconds: seconds(performance.now() - t0),
      bytesFetched,
      jobs,
      spooled: spooled !== undefined,
      schemas: request.schemas,
      replaced: swapped,
      backup: {
        createdAt: manifest.createdAt,
        sizeBytes: manifest.sizeBytes,
        sha256: manifest.sha256,
        codec: manifest.compression.codec,
        storageClass: object.storageClass,
      },
      tables,
      checks,
      warnings: [...new Set(warnings)],
    };
    if (request.mode === 'verify') await storeVerifyReport(deps.store, report);
    log.info('checks done', { passed, recoverySeconds: report.recoverySeconds });
    if (!passed) {
      const kept =
        request.mode === 'restore' && restoreInto === target
          ? `; ${target} is kept for inspection (drop it when done)`
          : request.mode === 'restore'
            ? `; ${target} was left as it was`
            : '';
      throw new RestoreCheckFailedError(
        `backup ${manifest.id} restored into ${target} but failed its checks: ${describeFailedChecks(checks)}${kept}`,
        { report },
      );
    }
    return report;
  } catch (error) {
    // Keep a restored target whose checks failed: it holds what the backup holds. Drop anything
    // else this run created: a half-restored or unverified database must not pass for a restore.
    const keep =
      error instanceof RestoreCheckFailedError && request.mode === 'restore' && restoreInto === target;
    if (created && !swapping && !keep && request.mode === 'restore') {
      phase('cleanup');
      await dropDatabase(deps.connection, maintenance, restoreInto).catch((e: Error) =>
        log.error('could not drop the database this restore created', {
          database: restoreInto,
          error: e.message,
        }),
      );
    }
    throw error;
  } finally {
    if (spooled) await rm(spooled.dir, { recursive: true, force: true });
    if (created && request.mode === 'verify') {
      phase('cleanup');
      await dropDatabase(deps.connection, maintenance, restoreInto).catch((e: Error) =>
        log.error('could not drop the scratch database', { database: restoreInto, error: e.message }),
      );
    }
  }
}
