import { listBaseBackups, listWal, readBaseManifest } from '../catalog/physical.js';
import {
  type BaseManifest,
  chooseBaseBackup,
  describeTarget,
  type RecoveryTarget,
} from '../domain/base-backup.js';
import { RecoveryRefusedError } from '../domain/errors.js';
import { type Continuity, checkContinuity } from '../domain/wal-continuity.js';
import { parseLsn } from '../domain/wal-names.js';
import { zstdBuffer } from '../storage/small-objects.js';
import type { BackupStore } from '../storage/store.js';

/** What a recovery will do, decided before anything is written. */
export interface RecoveryPlan {
  readonly base: BaseManifest;
  readonly target: RecoveryTarget;
  readonly continuity: Extract<Continuity, { ok: true }>;
}

/**
 * Picks the base backup for the target (or checks the one named) and checks that the archive is
 * continuous from it to the target on the timelines recovery follows. Refuses with
 * RecoveryRefusedError, saying why, when either fails.
 */
export async function planRecovery(
  store: BackupStore,
  cluster: string,
  target: RecoveryTarget,
  options: { readonly baseId?: string; readonly env: NodeJS.ProcessEnv },
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

  const wal = await listWal(store, cluster);
  // Only the history files recovery will read: those of the timelines after the base backup's,
  // probed upwards while they exist (as recovery_target_timeline = 'latest' does).
  const histories = new Map<number, string>();
  for (let tli = base.timeline + 1; wal.historyKeys.has(tli); tli++) {
    const key = wal.historyKeys.get(tli) as string;
    histories.set(
      tli,
      (await zstdBuffer(await store.getBytes(key), 'decompress', options.env)).toString('utf8'),
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
    throw new RecoveryRefusedError(
      `cannot recover cluster ${cluster} to ${describeTarget(target)} from base backup ${base.id}: ${continuity.reason}`,
    );
  }
  return { base, target, continuity };
}
