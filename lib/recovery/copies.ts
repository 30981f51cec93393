import { listBaseBackups, readBaseManifest } from '../catalog/physical.js';
import { type BaseManifest, chooseBaseBackup, type RecoveryTarget } from '../domain/base-backup.js';
import { CorruptBackupError, RecoveryRefusedError } from '../domain/errors.js';
import type { PassedOver, StoreRole } from '../domain/store-roles.js';
import type { RoleStore } from '../storage/store-roles.js';

/**
 * The copies of a base backup a recovery may read, nearest first: the primary's, then the
 * secondary's. The base backup is chosen once, across the stores (a degraded run may have left
 * the newest in one store only), so every copy is the same base backup. A store that lacks it or
 * cannot be read is passed over, with the reason; `from` reads that store alone. A copy whose
 * bytes fail their digest is found out as it is extracted: the recovery then goes on to the next
 * ({@link nextBaseCopy}).
 */

/** One store's copy of the chosen base backup: its own manifest (its key, digest, encryption). */
export interface BaseCopy extends RoleStore {
  readonly base: BaseManifest;
}

export interface BaseCopyPlan {
  readonly baseId: string;
  readonly candidates: readonly BaseCopy[];
  readonly passedOver: PassedOver[];
}

export async function planBaseCopies(
  stores: readonly RoleStore[],
  cluster: string,
  target: RecoveryTarget,
  options: { readonly baseId?: string; readonly from?: StoreRole },
): Promise<BaseCopyPlan> {
  const asked = options.from ? stores.filter((s) => s.role === options.from) : stores;
  if (asked.length === 0) throw new RecoveryRefusedError(`no ${options.from} store is configured`);
  const passedOver: PassedOver[] = [];
  const unreadable = new Set<RoleStore>();
  let firstError: unknown;
  let baseId = options.baseId;
  if (!baseId) {
    const bases = new Map<string, BaseManifest>();
    for (const s of asked) {
      try {
        for (const b of (await listBaseBackups(s.store, cluster)).bases)
          if (!bases.has(b.id)) bases.set(b.id, b);
      } catch (error) {
        firstError ??= error;
        unreadable.add(s);
        passedOver.push({
          role: s.role,
          url: s.store.url,
          reason: `unreadable: ${(error as Error).message}`,
        });
      }
    }
    // No store answered: that is the error, not an empty archive.
    if (unreadable.size === asked.length) throw firstError;
    const choice = chooseBaseBackup([...bases.values()], target);
    if (!choice.ok) {
      throw new RecoveryRefusedError(
        `${choice.reason} (cluster ${cluster} in ${asked.map((s) => s.store.url).join(' and ')})`,
      );
    }
    baseId = choice.base.id;
  }
  const candidates: BaseCopy[] = [];
  for (const s of asked) {
    if (unreadable.has(s)) continue;
    try {
      const base = await readBaseManifest(s.store, cluster, baseId);
      if (base) candidates.push({ ...s, base });
      else
        passedOver.push({
          role: s.role,
          url: s.store.url,
          reason: `missing: there is no base backup ${baseId} of cluster ${cluster} in ${s.store.url}`,
        });
    } catch (error) {
      passedOver.push({ role: s.role, url: s.store.url, reason: `unreadable: ${(error as Error).message}` });
    }
  }
  if (candidates.length === 0) {
    throw new RecoveryRefusedError(
      `there is no readable copy of base backup ${baseId} of cluster ${cluster}: ${passedOver.map((p) => `the ${p.role} copy was ${p.reason}`).join('; ')}`,
    );
  }
  return { baseId, candidates, passedOver };
}

/**
 * Whether a recovery that failed on one copy goes on to the next: only for a copy that could not
 * be used as it stands (its bytes do not match its manifest, or it could not be read: a
 * CorruptBackupError), never for a failure another copy of the same bytes would not change. An
 * archive that does not reach the target is such a failure: it is checked over the WAL of every
 * store the recovery's wal-fetch reads, whichever copy of the base backup is read.
 */
export function nextBaseCopy(error: unknown, plan: BaseCopyPlan, index: number): PassedOver | undefined {
  const copy = plan.candidates[index];
  if (!copy || index + 1 >= plan.candidates.length) return undefined;
  if (error instanceof CorruptBackupError)
    return { role: copy.role, url: copy.store.url, reason: `damaged: ${error.message}` };
  return undefined;
}
