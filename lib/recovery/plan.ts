import { listBaseBackups, listWal, readBaseManifest, type WalListing } from '../catalog/physical.js';
import {
  type BaseManifest,
  chooseBaseBackup,
  describeTarget,
  type RecoveryTarget,
} from '../domain/base-backup.js';
import { RecoveryRefusedError } from '../domain/errors.js';
import { type ArchivedSegment, type Continuity, checkContinuity } from '../domain/wal-continuity.js';
import { parseLsn } from '../domain/wal-names.js';
import { zstdBuffer } from '../storage/small-objects.js';
import type { BackupStore } from '../storage/store.js';
import type { RoleStore } from '../storage/store-roles.js';

/** What a recovery will do, decided before anything is written. */
export interface RecoveryPlan {
  readonly base: BaseManifest;
  readonly target: RecoveryTarget;
  readonly continuity: Extract<Continuity, { ok: true }>;
}

/**
 * Picks the base backup for the target (or checks the one named) and checks that the archive is
 * continuous from it to the target on the timelines recovery follows. The archive is what the
 * recovered server's wal-fetch can read: the WAL of every store in `archives` (by default
 * `store` alone), as wal-fetch reads the nearest good copy from any of them, so a segment one
 * store lacks and another holds is no gap. Refuses with RecoveryRefusedError, saying why and
 * where it looked, when either fails.
 */
export async function planRecovery(
  store: BackupStore,
  cluster: string,
  target: RecoveryTarget,
  options: {
    readonly baseId?: string;
    readonly env: NodeJS.ProcessEnv;
    /** The stores the recovered server's restore_command reads; `store` alone by default. */
    readonly archives?: readonly Pick<RoleStore, 'role' | 'store'>[];
  },
): Promise<RecoveryPlan> {
  let base: BaseManifest;
  if (options.baseId) {
    const named = await readBaseManifest(store, cluster, options.baseId);
    if (!named) {
      throw new RecoveryRefusedError(
        `there is no base backup ${options.baseId} of cluster ${cluster} in ${store.url}`,
      );
    }
    const fits = chooseBaseBackup([named], target);
    if (!fits.ok) throw new RecoveryRefusedError(fits.reason);
    base = named;
  } else {
    const { bases } = await listBaseBackups(store, cluster);
    const choice = chooseBaseBackup(bases, target);
    if (!choice.ok) throw new RecoveryRefusedError(`${choice.reason} (cluster ${cluster} in ${store.url})`);
    base = choice.base;
  }

  const archives = options.archives?.length ? options.archives : [{ role: 'primary' as const, store }];
  const wal = await unionOfArchives(archives, cluster);
  // Only the history files recovery will read: those of the timelines after the base backup's,
  // probed upwards while they exist (as recovery_target_timeline = 'latest' does).
  const histories = new Map<number, string>();
  for (let tli = base.timeline + 1; wal.historyKeys.has(tli); tli++) {
    const { store: holder, key } = wal.historyKeys.get(tli) as { store: BackupStore; key: string };
    histories.set(
      tli,
      (await zstdBuffer(await holder.getBytes(key), 'decompress', options.env)).toString('utf8'),
    );
  }
  const continuity = checkContinuity({
    base: {
      id: base.id,
      timeline: base.timeline,
      startLsn: parseLsn(base.startLsn) as bigint,
      stopLsn: parseLsn(base.stopLsn) as bigint,
    },
    target,
    segments: wal.segments,
    histories,
    segmentBytes: base.walSegmentBytes,
  });
  if (!continuity.ok) {
    const where =
      archives.length > 1 || wal.unreadable.length > 0
        ? ` (the WAL of ${[
            ...wal.read.map((a) => `the ${a.role} store (${a.store.url})`),
            ...wal.unreadable.map(
              (u) => `not of the ${u.role} store (${u.store.url}), which could not be read: ${u.message}`,
            ),
          ].join(', ')})`
        : '';
    throw new RecoveryRefusedError(
      `cannot recover cluster ${cluster} to ${describeTarget(target)} from base backup ${base.id}: ${continuity.reason}${where}`,
    );
  }
  return { base, target, continuity };
}

/** The WAL of several stores as one archive: what wal-fetch can read from any of them. */
interface UnionListing {
  readonly segments: ArchivedSegment[];
  /** Each history file, from the nearest store that holds it. */
  readonly historyKeys: Map<number, { readonly store: BackupStore; readonly key: string }>;
  readonly read: readonly Pick<RoleStore, 'role' | 'store'>[];
  readonly unreadable: readonly (Pick<RoleStore, 'role' | 'store'> & { readonly message: string })[];
}

/**
 * Lists each store's WAL and merges them, nearest store first. A store whose WAL cannot be listed
 * is left out (its wal-fetch would fail the same way) and named; none listed is the error itself.
 * A segment held by several stores is dated by its earliest archiving: a copy that pgbp sync
 * made later says nothing of when PostgreSQL wrote it.
 */
async function unionOfArchives(
  archives: readonly Pick<RoleStore, 'role' | 'store'>[],
  cluster: string,
): Promise<UnionListing> {
  const listed = await Promise.all(
    archives.map(async (a) => {
      try {
        return { at: a, wal: await listWal(a.store, cluster) };
      } catch (error) {
        return { at: a, error: error as Error };
      }
    }),
  );
  const read = listed.filter((l): l is { at: (typeof archives)[number]; wal: WalListing } => 'wal' in l);
  const failed = listed.filter((l): l is { at: (typeof archives)[number]; error: Error } => 'error' in l);
  if (read.length === 0) throw failed[0]?.error;
  const segments = new Map<string, ArchivedSegment>();
  const historyKeys = new Map<number, { store: BackupStore; key: string }>();
  for (const { at, wal } of read) {
    for (const s of wal.segments) {
      const held = segments.get(s.name);
      if (!held || s.archivedAt < held.archivedAt) segments.set(s.name, s);
    }
    for (const [tli, key] of wal.historyKeys)
      if (!historyKeys.has(tli)) historyKeys.set(tli, { store: at.store, key });
  }
  return {
    segments: [...segments.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
    historyKeys,
    read: read.map((r) => r.at),
    unreadable: failed.map((f) => ({ ...f.at, message: f.error.message })),
  };
}
