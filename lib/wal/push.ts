import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  ForeignClusterError,
  InvalidWalFileError,
  ObjectExistsError,
  WalArchiveUnavailableError,
  WalConflictError,
} from '../domain/errors.js';
import { parseWalFileName, type WalFileName } from '../domain/wal-names.js';
import type { Clock } from '../platform/clock.js';
import { readControlSystemIdentifier, readSegmentIdentity } from '../postgres/wal-headers.js';
import type { ArchiveInfo, WalArchive } from './archive.js';
import { compress } from './codec.js';

export interface PushDeps {
  readonly archive: WalArchive;
  /** zstd level. */
  readonly level: number;
  /** The data directory (archive_command's working directory), for global/pg_control. */
  readonly dataDir: string;
  readonly clock: Clock;
  readonly env: NodeJS.ProcessEnv;
}

export interface PushOutcome {
  readonly name: string;
  /** `stored`: written now; `already-stored`: the archive held these very bytes already. */
  readonly status: 'stored' | 'already-stored';
  readonly key: string;
  readonly sha256: string;
  readonly bytes: number;
  /** Bytes in the store (compressed); absent when nothing was written. */
  readonly storedBytes?: number;
}

/** What the push learned of the file before storing it. */
interface Examined {
  readonly file: WalFileName;
  readonly bytes: Buffer;
  readonly sha256: string;
  readonly systemIdentifier?: string;
  readonly major?: number;
  readonly segmentBytes?: number;
}

async function examine(path: string, dataDir: string): Promise<Examined> {
  const name = basename(path);
  const file = parseWalFileName(name);
  if (!file) {
    throw new InvalidWalFileError(
      `${JSON.stringify(name)} is not a WAL file name (a segment, .partial, .backup or .history file)`,
    );
  }
  const bytes = await readFile(path);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (file.kind === 'segment' || file.kind === 'partial') {
    const identity = readSegmentIdentity(bytes);
    if (!identity) {
      throw new InvalidWalFileError(`${name} does not start with a WAL segment's long page header`);
    }
    return {
      file,
      bytes,
      sha256,
      systemIdentifier: identity.systemIdentifier,
      segmentBytes: identity.segmentBytes,
      ...(identity.major !== undefined ? { major: identity.major } : {}),
    };
  }
  // History and backup-label files carry no header: the cluster is the data directory's.
  const control = await readFile(join(dataDir, 'global', 'pg_control')).catch(() => undefined);
  const systemIdentifier = control ? readControlSystemIdentifier(control) : undefined;
  return { file, bytes, sha256, ...(systemIdentifier ? { systemIdentifier } : {}) };
}

function checkIdentity(examined: Examined, info: ArchiveInfo | undefined, archive: WalArchive): void {
  if (!info || !examined.systemIdentifier) return;
  if (examined.systemIdentifier !== info.systemIdentifier) {
    throw new ForeignClusterError(
      `${examined.file.name} belongs to the cluster with system identifier ${examined.systemIdentifier}, but the archive ${archive.cluster} in ${archive.store.url} holds WAL of ${info.systemIdentifier}: refused (another cluster, or one initialised again, needs its own wal.cluster)`,
    );
  }
}

/**
 * Archives one WAL file (archive_command): compressed, under a key carrying the SHA-256 of its
 * bytes, written atomically and durably by the store. Returns once stored; throws when it is not.
 * The same name with the same bytes again is a success; with other bytes a WalConflictError.
 */
export async function pushWal(path: string, deps: PushDeps): Promise<PushOutcome> {
  const { archive } = deps;
  const examined = await examine(path, deps.dataDir);
  const { file, sha256 } = examined;
  const key = archive.keyOf(file, sha256);
  const read = Promise.all([archive.info(), archive.find(file)]).catch((error: unknown) => {
    throw new WalArchiveUnavailableError(
      `cannot read the WAL archive ${archive.cluster} in ${archive.store.url}: ${(error as Error).message}`,
      { cause: error },
    );
  });
  const [[info, copies], compressed] = await Promise.all([
    read,
    compress(examined.bytes, deps.level, deps.env),
  ]);
  checkIdentity(examined, info, archive);
  const conflict = () =>
    new WalConflictError(
      `${file.name} is already archived in ${archive.store.url} (cluster ${archive.cluster}) with other contents (sha256 ${copies.map((c) => c.sha256).join(', ')}; this file: ${sha256}): refused, nothing overwritten`,
    );
  if (copies.some((c) => c.sha256 === sha256)) {
    return { name: file.name, status: 'already-stored', key, sha256, bytes: examined.bytes.length };
  }
  if (copies.length > 0) throw conflict();
  if (!info) {
    if (!examined.systemIdentifier) {
      throw new ForeignClusterError(
        `${file.name} carries no system identifier and the archive ${archive.cluster} has none yet: push from the data directory (archive_command's working directory) or push a segment first`,
      );
    }
    const claimed = await archive.claim({
      systemIdentifier: examined.systemIdentifier,
      ...(examined.major !== undefined ? { major: examined.major } : {}),
      ...(examined.segmentBytes !== undefined ? { segmentBytes: examined.segmentBytes } : {}),
      createdAt: deps.clock.now().toISOString(),
    });
    checkIdentity(examined, claimed, archive);
  }
  try {
    await archive.store.putBytes(key, compressed, { contentType: 'application/zstd' });
  } catch (error) {
    // Another call stored the same bytes under the same key first: that is this file archived.
    if (error instanceof ObjectExistsError) {
      return { name: file.name, status: 'already-stored', key, sha256, bytes: examined.bytes.length };
    }
    throw new WalArchiveUnavailableError(
      `cannot store ${file.name} in ${archive.store.url}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return {
    name: file.name,
    status: 'stored',
    key,
    sha256,
    bytes: examined.bytes.length,
    storedBytes: compressed.length,
  };
}
