import { createHash } from 'node:crypto';
import {
  listArchiveFiles,
  listBaseBackups,
  listClusters,
  type StoredArchiveFile,
} from '../catalog/physical.js';
import type { BaseManifest } from '../domain/base-backup.js';
import { CorruptBackupError, ObjectExistsError } from '../domain/errors.js';
import { planPhysicalRetention } from '../domain/physical-retention.js';
import type { StoreRole } from '../domain/store-roles.js';
import { parseWalFileName } from '../domain/wal-names.js';
import { mapLimit } from '../platform/concurrency.js';
import type { Logger } from '../platform/logger.js';
import { readSegmentIdentity } from '../postgres/wal-headers.js';
import type { RoleStore } from '../storage/store-roles.js';
import { type ArchiveInfo, WalArchive } from '../wal/archive.js';
import { decompress } from '../wal/codec.js';
import { copyBaseBackup } from './base-backups.js';
import type { SyncedPhysical } from './physical-report.js';
import { readingStore } from './store-unreadable.js';

/** How long a store keeps its physical archive (config `wal.retention`, `pitr.window`). */
export interface PhysicalWindows {
  readonly walMs: number;
  readonly pitrMs: number;
}

export interface PhysicalSyncRequest {
  /** The two stores; with fewer there is nothing to sync. */
  readonly stores: readonly RoleStore[];
  /** These clusters only; by default every cluster either store holds. */
  readonly clusters?: readonly string[];
  /** A store is sent only what its own retention of the physical archive would keep. */
  readonly windows: (role: StoreRole) => PhysicalWindows;
  readonly now: Date;
  readonly logger: Logger;
  /** For zstd, which decompresses each WAL file to verify it. */
  readonly env: NodeJS.ProcessEnv;
  /** WAL files copied at once (each is a zstd child and a store round trip). */
  readonly concurrency?: number;
}

/** The side of one cluster's archive in one store. */
interface Side {
  readonly at: RoleStore;
  readonly archive: WalArchive;
  readonly info: ArchiveInfo | undefined;
  readonly files: readonly StoredArchiveFile[];
  readonly bases: readonly BaseManifest[];
}

/**
 * Copies to each store the physical archive it lacks and the other holds (what a store that was
 * down missed): WAL segments, `.partial`, `.backup` and history files, each decompressed and
 * checked against the SHA-256 of the original its name carries before it is written, and
 * complete base backups (their tar checked against their manifest, the manifest written last).
 * Nothing is overwritten: a name the target holds with other contents is a conflict, reported.
 * A store is sent only what its retention of the physical archive would keep.
 */
export async function syncPhysical(request: PhysicalSyncRequest): Promise<SyncedPhysical[]> {
  const [a, b] = request.stores;
  if (!a || !b) return [];
  const clusters = request.clusters
    ? [...request.clusters]
    : [...new Set([...(await listClusters(a.store)), ...(await listClusters(b.store))])].sort();
  const results: SyncedPhysical[] = [];
  for (const cluster of clusters) {
    const [sideA, sideB] = await Promise.all([readSide(a, cluster), readSide(b, cluster)]);
    if (sideA.files.length + sideA.bases.length + sideB.files.length + sideB.bases.length === 0) continue;
    const identity = identityConflict(cluster, sideA, sideB);
    if (identity) {
      request.logger.warn('physical archive not synced', { cluster, reason: identity.reason });
      results.push(identity);
      continue;
    }
    results.push(...conflicts(cluster, sideA, sideB));
    for (const [from, to] of [
      [sideA, sideB],
      [sideB, sideA],
    ] as const) {
      const done = await syncDirection(cluster, from, to, request);
      const copied = done.filter((d) => d.status === 'copied').length;
      if (done.length > 0) {
        request.logger.info('physical archive synced', {
          cluster,
          from: from.at.role,
          to: to.at.role,
          copied,
          notCopied: done.length - copied,
        });
      }
      results.push(...done);
    }
  }
  return results;
}

async function readSide(at: RoleStore, cluster: string): Promise<Side> {
  const archive = new WalArchive(at.store, cluster);
  const [info, files, { bases }] = await readingStore(at, `the physical archive of cluster ${cluster}`, () =>
    Promise.all([archive.info(), listArchiveFiles(at.store, cluster), listBaseBackups(at.store, cluster)]),
  );
  return { at, archive, info, files, bases };
}

/** Two archives of one name that hold WAL of different clusters are never mixed. */
function identityConflict(cluster: string, a: Side, b: Side): SyncedPhysical | undefined {
  if (!a.info || !b.info || a.info.systemIdentifier === b.info.systemIdentifier) return undefined;
  return {
    cluster,
    kind: 'archive',
    name: 'archive.json',
    from: a.at.role,
    to: b.at.role,
    status: 'conflict',
    reason: `the ${a.at.role} store's archive ${cluster} holds WAL of system ${a.info.systemIdentifier}, the ${b.at.role} store's of ${b.info.systemIdentifier}: nothing copied either way`,
  };
}

/** Names both stores hold with different contents: reported once, neither copy touched. */
function conflicts(cluster: string, a: Side, b: Side): SyncedPhysical[] {
  const inB = byName(b.files);
  const out: SyncedPhysical[] = [];
  for (const [name, copies] of byName(a.files)) {
    const other = inB.get(name);
    if (!other) continue;
    const mine = new Set(copies.map((c) => c.sha256));
    if (
      other.every((o) => mine.has(o.sha256)) &&
      copies.every((c) => other.some((o) => o.sha256 === c.sha256))
    )
      continue;
    out.push({
      cluster,
      kind: (copies[0] as StoredArchiveFile).kind,
      name,
      from: a.at.role,
      to: b.at.role,
      status: 'conflict',
      reason: `the ${a.at.role} store holds ${name} with sha256 ${[...mine].join(', ')}, the ${b.at.role} store with ${[...new Set(other.map((o) => o.sha256))].join(', ')}: neither is replaced`,
    });
  }
  return out;
}

function byName(files: readonly StoredArchiveFile[]): Map<string, StoredArchiveFile[]> {
  const map = new Map<string, StoredArchiveFile[]>();
  for (const f of files) map.set(f.name, [...(map.get(f.name) ?? []), f]);
  return map;
}

/** Copies what `to` lacks of `from`'s archive of the cluster, within `to`'s retention. */
async function syncDirection(
  cluster: string,
  from: Side,
  to: Side,
  request: PhysicalSyncRequest,
): Promise<SyncedPhysical[]> {
  const held = new Set(to.files.map((f) => f.name));
  const sourceCopies = byName(from.files);
  const missing = [...sourceCopies.entries()].filter(([name]) => !held.has(name));
  const heldBases = new Set(to.bases.map((b) => b.id));
  const missingBases = from.bases.filter((b) => !heldBases.has(b.id));
  if (missing.length === 0 && missingBases.length === 0) return [];

  // The target's retention, planned over what it holds and what it would be sent (dated as in
  // the source): what that plan removes at once is not sent.
  const windows = request.windows(to.at.role);
  const plan = planPhysicalRetention({
    now: request.now,
    walWindowMs: windows.walMs,
    pitrWindowMs: windows.pitrMs,
    bases: [...to.bases, ...missingBases],
    files: [
      ...to.files.map((f) => ({ name: f.name, key: f.key, archivedAt: f.archivedAt })),
      ...missing.map(([name, copies]) => ({
        name,
        key: (copies[0] as StoredArchiveFile).key,
        archivedAt: (copies[0] as StoredArchiveFile).archivedAt,
      })),
    ],
    ...(from.bases[0] ? { segmentBytes: from.bases[0].walSegmentBytes } : {}),
  });
  const removed = new Set(plan.removeFiles.map((f) => f.key));
  const removedBases = new Set(plan.removeBases.map((b) => b.id));
  const base = { cluster, from: from.at.role, to: to.at.role } as const;
  const identity = to.info ?? from.info;

  const results = await mapLimit(missing, request.concurrency ?? 4, async ([name, copies]) => {
    const first = copies[0] as StoredArchiveFile;
    const entry = { ...base, kind: first.kind, name };
    if (removed.has(first.key)) {
      return {
        ...entry,
        status: 'skipped',
        reason: `the ${to.at.role} store's retention of the physical archive would remove it at once`,
      } satisfies SyncedPhysical;
    }
    if (copies.length > 1) {
      return {
        ...entry,
        status: 'failed',
        reason: `${name} is archived twice in the ${from.at.role} store with different contents (${copies.map((c) => c.sha256).join(', ')}): not copied`,
      } satisfies SyncedPhysical;
    }
    if (first.storageClass === 'GLACIER' || first.storageClass === 'DEEP_ARCHIVE') {
      return {
        ...entry,
        status: 'skipped',
        reason: `${first.key} is ${first.storageClass} in ${from.at.store.url}; thaw it first`,
      } satisfies SyncedPhysical;
    }
    return copyWalFile(entry, first, from, to, identity, request.env);
  });

  // Base backups after the WAL they need, each whole with its manifest last, or not at all.
  const walHeld = new Set([
    ...held,
    ...results
      .filter((r) => r.status === 'copied' || r.reason?.startsWith('stored meanwhile'))
      .map((r) => r.name),
  ]);
  for (const b of missingBases) {
    const entry = { ...base, kind: 'base', name: b.id } as const;
    if (removedBases.has(b.id)) {
      results.push({
        ...entry,
        status: 'skipped',
        reason: `the ${to.at.role} store's retention of base backups would remove it at once`,
      });
      continue;
    }
    results.push(await copyBaseBackup(entry, b, from.at, to.at, walHeld, request.now));
  }

  // The archive's identity last: a store with no archive.json answers no wal-fetch at all, and
  // one that has it answers "not archived" for what it lacks.
  if (!to.info && from.info && results.some((r) => r.status === 'copied')) {
    try {
      await to.archive.claim({
        systemIdentifier: from.info.systemIdentifier,
        ...(from.info.major !== undefined ? { major: from.info.major } : {}),
        ...(from.info.segmentBytes !== undefined ? { segmentBytes: from.info.segmentBytes } : {}),
        createdAt: from.info.createdAt,
      });
    } catch (error) {
      results.push({
        ...base,
        kind: 'archive',
        name: 'archive.json',
        status: 'failed',
        reason: `cannot record the archive's identity in ${to.at.store.url}: ${(error as Error).message}`,
      });
    }
  }
  return results;
}

/**
 * Copies one WAL object: read through the source's seam (decrypted, the store checking its own
 * digest where it keeps one), decompressed and hashed against the digest its name carries, and a
 * segment's system identifier checked against the archive's; only then written, as the same
 * compressed bytes, through the target's seam (which encrypts with its own settings).
 */
async function copyWalFile(
  entry: Omit<SyncedPhysical, 'status'>,
  stored: StoredArchiveFile,
  from: Side,
  to: Side,
  identity: ArchiveInfo | undefined,
  env: NodeJS.ProcessEnv,
): Promise<SyncedPhysical> {
  const file = parseWalFileName(stored.name);
  if (!file) return { ...entry, status: 'failed', reason: `${stored.name} is not a WAL file name` };
  const where = `${stored.name} in the ${from.at.role} store (${from.at.store.url})`;
  let compressed: Buffer;
  try {
    compressed = await from.at.store.getBytes(stored.key);
  } catch (error) {
    const damaged = error instanceof CorruptBackupError;
    return {
      ...entry,
      status: 'failed',
      reason: `${damaged ? `${where} is damaged` : `cannot read ${where}`}: ${(error as Error).message}; not copied`,
    };
  }
  let original: Buffer;
  try {
    original = await decompress(compressed, env);
  } catch (error) {
    return {
      ...entry,
      status: 'failed',
      reason: `${where} is damaged: ${(error as Error).message.split('\n')[0]}; not copied`,
    };
  }
  const sha256 = createHash('sha256').update(original).digest('hex');
  if (sha256 !== stored.sha256) {
    return {
      ...entry,
      status: 'failed',
      reason: `${where} is damaged: its SHA-256 is ${sha256}, the archive recorded ${stored.sha256}; not copied`,
    };
  }
  if ((file.kind === 'segment' || file.kind === 'partial') && identity) {
    const own = readSegmentIdentity(original)?.systemIdentifier;
    if (own !== identity.systemIdentifier) {
      return {
        ...entry,
        status: 'failed',
        reason: `${where} belongs to system ${own ?? 'unknown'}, the archive ${identity.cluster} to ${identity.systemIdentifier}; not copied`,
      };
    }
  }
  try {
    await to.at.store.putBytes(to.archive.keyOf(file, stored.sha256), compressed, {
      contentType: 'application/zstd',
    });
  } catch (error) {
    // The same name and digest stored meanwhile (a wal-push, another sync): the same bytes.
    if (error instanceof ObjectExistsError) {
      return { ...entry, status: 'skipped', reason: `stored meanwhile in the ${to.at.role} store` };
    }
    return {
      ...entry,
      status: 'failed',
      reason: `cannot store ${stored.name} in the ${to.at.role} store (${to.at.store.url}): ${(error as Error).message}`,
    };
  }
  return { ...entry, status: 'copied', bytes: compressed.length };
}
