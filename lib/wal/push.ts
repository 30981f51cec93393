import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  ForeignClusterError,
  InvalidWalFileError,
  ObjectExistsError,
  WalArchiveUnavailableError,
  WalConflictError,
} from '../domain/errors.js';
import type { PassedOver } from '../domain/store-roles.js';
import { parseWalFileName, type WalFileName } from '../domain/wal-names.js';
import type { Clock } from '../platform/clock.js';
import { readControlSystemIdentifier, readSegmentIdentity } from '../postgres/wal-headers.js';
import type { ArchiveInfo, RoleArchive, WalArchive } from './archive.js';

export type { RoleArchive } from './archive.js';

import type { SegmentEncoder } from './segment-encoder.js';
import { readWalFile } from './wal-read.js';

/** A store that does not hold the file after the push (it could not be opened, read or written). */
export type DegradedStore = PassedOver;

export interface PushDeps {
  /** Every store the file goes to, the primary first. */
  readonly archives: readonly RoleArchive[];
  /** Configured stores that could not even be opened (a NAS directory not mounted). */
  readonly unavailable?: readonly DegradedStore[];
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
  /** The configured stores that do not hold the file: the push is degraded (see pushWal). */
  readonly degraded?: readonly DegradedStore[];
  /** What coreutils `cksum` said of the bytes pushed (`<crc>-<size>`), when asked for. */
  readonly check?: string;
}

/** How a push reads its file. */
export interface PushOptions {
  /** Whether to say what cksum says of the bytes pushed (PushOutcome.check). */
  readonly check?: boolean;
  /**
   * Reads the file from a private copy, with its cksum (the pusher's; see segment-encoder.ts);
   * through pipes when it has no room for the copy.
   */
  readonly encoder?: SegmentEncoder;
}

/** What the push learned of the file before storing it, from its one read. */
interface Examined {
  readonly file: WalFileName;
  readonly bytes: number;
  readonly sha256: string;
  readonly compressed: Buffer;
  /** The launcher's check of the same bytes (see readWalFile), when asked for. */
  readonly check?: string;
  readonly systemIdentifier?: string;
  readonly major?: number;
  readonly segmentBytes?: number;
}

function walFileOf(path: string): WalFileName {
  const name = basename(path);
  const file = parseWalFileName(name);
  if (!file) {
    throw new InvalidWalFileError(
      `${JSON.stringify(name)} is not a WAL file name (a segment, .partial, .backup or .history file)`,
    );
  }
  return file;
}

async function examine(
  path: string,
  file: WalFileName,
  deps: Pick<PushDeps, 'dataDir' | 'level' | 'env'>,
  options: PushOptions,
): Promise<Examined> {
  const read =
    (await options.encoder?.read(path, deps.level)) ??
    (await readWalFile(path, { level: deps.level, env: deps.env, check: options.check === true }));
  const { bytes, sha256, compressed } = read;
  const common = { file, bytes, sha256, compressed, ...(read.check ? { check: read.check } : {}) };
  if (file.kind === 'segment' || file.kind === 'partial') {
    const identity = readSegmentIdentity(read.head);
    if (!identity) {
      throw new InvalidWalFileError(`${file.name} does not start with a WAL segment's long page header`);
    }
    return {
      ...common,
      systemIdentifier: identity.systemIdentifier,
      segmentBytes: identity.segmentBytes,
      ...(identity.major !== undefined ? { major: identity.major } : {}),
    };
  }
  // History and backup-label files carry no header: the cluster is the data directory's.
  const control = await readFile(join(deps.dataDir, 'global', 'pg_control')).catch(() => undefined);
  const systemIdentifier = control ? readControlSystemIdentifier(control) : undefined;
  return { ...common, ...(systemIdentifier ? { systemIdentifier } : {}) };
}

function checkIdentity(examined: Examined, info: ArchiveInfo | undefined, archive: WalArchive): void {
  if (!info || !examined.systemIdentifier) return;
  if (examined.systemIdentifier !== info.systemIdentifier) {
    throw new ForeignClusterError(
      `${examined.file.name} belongs to the cluster with system identifier ${examined.systemIdentifier}, but the archive ${archive.cluster} in ${archive.store.url} holds WAL of ${info.systemIdentifier}: refused (another cluster, or one initialised again, needs its own wal.cluster)`,
    );
  }
}

/** What one store made of the file: written now, or held already with these very bytes. */
type StoreStatus = { readonly status: PushOutcome['status']; readonly key: string };

/**
 * Stores the examined file in one archive, with the integrity rules of every store: the same
 * bytes already there are a success, other bytes a WalConflictError, another cluster's WAL a
 * ForeignClusterError; a store that cannot be read or written a WalArchiveUnavailableError.
 */
async function pushToArchive(
  file: WalFileName,
  reading: Promise<Examined>,
  archive: WalArchive,
  clock: Clock,
): Promise<StoreStatus> {
  // The store is read while the file is.
  const [info, copies] = await Promise.all([archive.info(), archive.find(file)]).catch((error: unknown) => {
    throw new WalArchiveUnavailableError(
      `cannot read the WAL archive ${archive.cluster} in ${archive.store.url}: ${(error as Error).message}`,
      { cause: error },
    );
  });
  const examined = await reading;
  const { sha256 } = examined;
  const key = archive.keyOf(file, sha256);
  checkIdentity(examined, info, archive);
  if (copies.some((c) => c.sha256 === sha256)) return { status: 'already-stored', key };
  if (copies.length > 0) {
    throw new WalConflictError(
      `${file.name} is already archived in ${archive.store.url} (cluster ${archive.cluster}) with other contents (sha256 ${copies.map((c) => c.sha256).join(', ')}; this file: ${sha256}): refused, nothing overwritten`,
    );
  }
  if (!info) {
    if (!examined.systemIdentifier) {
      throw new ForeignClusterError(
        `${file.name} carries no system identifier and the archive ${archive.cluster} in ${archive.store.url} has none yet: push from the data directory (archive_command's working directory) or push a segment first`,
      );
    }
    const claimed = await archive
      .claim({
        systemIdentifier: examined.systemIdentifier,
        ...(examined.major !== undefined ? { major: examined.major } : {}),
        ...(examined.segmentBytes !== undefined ? { segmentBytes: examined.segmentBytes } : {}),
        createdAt: clock.now().toISOString(),
      })
      .catch((error: unknown) => {
        throw new WalArchiveUnavailableError(
          `cannot record the WAL archive ${archive.cluster} in ${archive.store.url}: ${(error as Error).message}`,
          { cause: error },
        );
      });
    checkIdentity(examined, claimed, archive);
  }
  try {
    await archive.store.putBytes(key, examined.compressed, { contentType: 'application/zstd' });
  } catch (error) {
    // Another call stored the same bytes under the same key first: that is this file archived.
    if (error instanceof ObjectExistsError) return { status: 'already-stored', key };
    throw new WalArchiveUnavailableError(
      `cannot store ${file.name} in ${archive.store.url}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return { status: 'stored', key };
}

/** A refusal that holds whatever the other store did: the file must not be archived as it is. */
function isRefusal(error: unknown): boolean {
  return error instanceof WalConflictError || error instanceof ForeignClusterError;
}

/**
 * Archives one WAL file (archive_command): read and compressed once, then stored in every
 * configured store (the primary, and the secondary where there is one), each under a key carrying
 * the SHA-256 of its bytes, written atomically and durably by the store. The same name with the
 * same bytes again is a success; with other bytes, in any store, a WalConflictError.
 *
 * Returns once the file is durably stored in every store that could be reached, and in one at
 * least; a store that failed (unreachable, full) is in `degraded`, for the caller to report. The
 * push does not fail for it: a failing archive_command fills pg_wal until the server stops,
 * while the file is safe in the other store and `pgbp sync` copies it across later. Throws when
 * no store holds the file.
 */
export async function pushWal(path: string, deps: PushDeps, options: PushOptions = {}): Promise<PushOutcome> {
  const file = walFileOf(path);
  // Read and compressed once, while the stores are read; a read or a compression that fails is
  // this file's failure, not a store's.
  const reading = examine(path, file, deps, options);
  reading.catch(() => {});
  const settled = await Promise.allSettled(
    deps.archives.map((a) => pushToArchive(file, reading, a.archive, deps.clock)),
  );
  const examined = await reading;
  const { sha256 } = examined;
  const refused = settled.find((s) => s.status === 'rejected' && isRefusal(s.reason));
  if (refused?.status === 'rejected') throw refused.reason;
  const degraded: DegradedStore[] = [...(deps.unavailable ?? [])];
  const done: StoreStatus[] = [];
  settled.forEach((s, i) => {
    const { role, archive } = deps.archives[i] as RoleArchive;
    if (s.status === 'fulfilled') done.push(s.value);
    else degraded.push({ role, url: archive.store.url, reason: messageOf(s.reason) });
  });
  const first = done[0];
  if (!first) {
    const failed = settled.find((s) => s.status === 'rejected');
    const detail = degraded.map((d) => `${d.role} store ${d.url}: ${d.reason}`).join('; ');
    if (degraded.length === 1 && failed?.status === 'rejected') throw failed.reason;
    throw new WalArchiveUnavailableError(`${file.name} is stored in no store: ${detail}`, {
      cause: failed?.status === 'rejected' ? failed.reason : undefined,
    });
  }
  const stored = done.some((d) => d.status === 'stored');
  return {
    name: file.name,
    status: stored ? 'stored' : 'already-stored',
    key: first.key,
    sha256,
    bytes: examined.bytes,
    ...(stored ? { storedBytes: examined.compressed.length } : {}),
    ...(examined.check ? { check: examined.check } : {}),
    ...(degraded.length > 0 ? { degraded } : {}),
  };
}

function messageOf(error: unknown): string {
  const e = error as Error;
  return `${e.name}: ${e.message}`;
}
