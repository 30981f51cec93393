import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { locateBackup } from '../catalog/backups.js';
import { archivedBackupError } from '../catalog/thaw-state.js';
import { InvalidRestoreRequestError, RestoreFailedError, VersionMismatchError } from '../domain/errors.js';
import { redact } from '../domain/redact.js';
import { defaultSpawn } from '../platform/processes.js';
import {
  type ArchiveToc,
  archiveSchemas,
  readTocFrom,
  UnsupportedArchiveError,
} from '../postgres/custom-archive.js';
import { serverVersion } from '../postgres/pg-restore.js';
import { describeConnection, libpqEnv, toolVersion } from '../postgres/pg-tools.js';
import { parseVersion, requireToolAtLeastServer } from '../postgres/versions.js';
import { startDecoder } from '../storage/codec.js';
import { type ObjectDetails, requireKeyFor } from '../storage/store.js';
import { archiveCounter } from './archive-checks.js';
import { fetchFailed, type RestoreContext, type RestoreDeps } from './context.js';
import { type RestoreRequest, selectorOf } from './request.js';

/**
 * The find step: the backup the request names, refused when it is archived and must be thawed
 * first; returns what the later steps share, and the stored object's details for the report.
 */
export async function findBackupToRestore(
  request: RestoreRequest,
  deps: RestoreDeps,
): Promise<{ readonly ctx: RestoreContext; readonly object: ObjectDetails }> {
  deps.onPhase?.('find');
  const { backup, object, archived } = await locateBackup(deps.store, request.database, selectorOf(request));
  const { manifest } = backup;
  const log = deps.logger.child({ database: request.database, backupId: manifest.id, mode: request.mode });
  if (archived) throw archivedBackupError(manifest.id, request.database, object);
  await requireKeyFor(deps.store, manifest);
  const depth = request.depth ?? deps.policy.depth;
  const ctx: RestoreContext = {
    request,
    deps,
    manifest,
    log,
    spawn: deps.spawn ?? defaultSpawn,
    maintenance: deps.maintenanceDatabase ?? 'postgres',
    secrets: [deps.connection.password],
    warnings: [],
    phase: (p) => deps.onPhase?.(p),
    onBytes: (n) => deps.onProgress?.(n),
    depth,
    counter: archiveCounter(depth),
  };
  return { ctx, object };
}

/**
 * Refuses a pg_restore older than the server it restores into, or older than the pg_dump that
 * made the archive, before anything is created.
 */
export async function requireCompatibleTools(ctx: RestoreContext): Promise<void> {
  const { deps, manifest, maintenance, secrets } = ctx;
  const env = libpqEnv(deps.connection, deps.env);
  let tool: Awaited<ReturnType<typeof toolVersion>>;
  try {
    tool = await toolVersion('pg_restore', env, ctx.spawn);
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
}

/**
 * Refuses a request for schemas the backup does not hold (read from the archive itself), and
 * warns of requested schemas the manifest lists no table in.
 */
export async function requireRequestedSchemas(
  ctx: RestoreContext,
  toc: ArchiveToc | undefined,
): Promise<void> {
  const { request, manifest, warnings } = ctx;
  if (request.schemas.length > 0) {
    const inBackup = toc ? archiveSchemas(toc) : undefined;
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
}

/**
 * The archive's table of contents (its schemas, owners and privileges): the first bytes of the
 * object, decompressed when it is zstd, read no further. Undefined when it cannot be read; the
 * restore then goes on, and its digest check tells a damaged backup apart.
 */
export async function readArchiveToc(ctx: RestoreContext): Promise<ArchiveToc | undefined> {
  const { manifest, deps } = ctx;
  let source: Readable;
  try {
    source = await deps.store.getStream(manifest.key);
  } catch (error) {
    fetchFailed(ctx, error);
  }
  let zstd: ReturnType<typeof startDecoder>;
  try {
    let chunks: AsyncIterable<Buffer> = source;
    zstd = startDecoder(manifest.compression.codec, {
      env: libpqEnv(deps.connection, deps.env),
      spawn: ctx.spawn,
    });
    if (zstd) {
      // Stopping once the TOC is read cuts the pipe: the error that follows is expected.
      pipeline(source, zstd.stdin as Writable).catch(() => {});
      chunks = zstd.stdout as Readable;
    }
    return await readTocFrom(chunks);
  } catch (error) {
    if (!(error instanceof UnsupportedArchiveError)) fetchFailed(ctx, error);
    ctx.log.warn('table of contents of the archive not read', { reason: error.message });
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
