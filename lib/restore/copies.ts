import { type BackupSelector, type LocatedBackup, locateBackup } from '../catalog/backups.js';
import { archivedBackupError } from '../catalog/thaw-state.js';
import { BackupNotFoundError, CorruptBackupError } from '../domain/errors.js';
import type { PassedOver, StoreRole } from '../domain/store-roles.js';
import type { RoleStore } from '../storage/store-roles.js';

/** The stores holding a usable copy of one backup, nearest first, and those that do not. */
export interface CopyPlan {
  /** The backup, by id: `latest` resolved across the stores, so both name the same one. */
  readonly backupId: string;
  readonly candidates: readonly RoleStore[];
  readonly passedOver: PassedOver[];
}

/**
 * Finds the nearest good copy of a backup: the primary's first, then the secondary's. `latest`
 * is the newest complete backup in either store (a degraded run may have left it in one only).
 * A copy that is missing, damaged (its dump of another size than recorded) or archived (to be
 * thawed first) is passed over, with the reason; `from` forces one store and passes nothing
 * over. A copy whose bytes fail their digest is found out as it is read: the restore then
 * goes on to the next candidate ({@link nextAfterCorrupt}).
 */
export async function planCopies(
  stores: readonly RoleStore[],
  database: string,
  selector: BackupSelector,
  from?: StoreRole,
): Promise<CopyPlan> {
  const asked = from ? stores.filter((s) => s.role === from) : stores;
  if (asked.length === 0) throw new BackupNotFoundError(`no ${from} store is configured`);
  const passedOver: PassedOver[] = [];
  const backupId = await resolveBackupId(asked, database, selector);
  const candidates: RoleStore[] = [];
  let firstError: Error | undefined;
  for (const s of asked) {
    try {
      const { archived, object } = await locateBackup(s.store, database, { kind: 'id', id: backupId });
      if (archived) {
        const error = archivedBackupError(backupId, database, object);
        firstError ??= error;
        passedOver.push({ role: s.role, url: s.store.url, reason: `archived: ${error.message}` });
        continue;
      }
      candidates.push(s);
    } catch (error) {
      firstError ??= error as Error;
      const reason =
        error instanceof BackupNotFoundError
          ? `missing: ${(error as Error).message}`
          : error instanceof CorruptBackupError
            ? `damaged: ${(error as Error).message}`
            : `unreadable: ${(error as Error).message}`;
      passedOver.push({ role: s.role, url: s.store.url, reason });
    }
  }
  if (candidates.length === 0) throw firstError ?? new BackupNotFoundError(`no usable copy of ${backupId}`);
  return { backupId, candidates, passedOver };
}

/** The backup a selector names: `latest` is the newest complete backup in any of the stores. */
async function resolveBackupId(
  stores: readonly RoleStore[],
  database: string,
  selector: BackupSelector,
): Promise<string> {
  if (selector.kind === 'id') return selector.id;
  const newest: { id: string; createdAt: string }[] = [];
  const failures: Error[] = [];
  for (const s of stores) {
    try {
      const { backup } = await locateBackup(s.store, database, selector);
      newest.push({ id: backup.manifest.id, createdAt: backup.manifest.createdAt });
    } catch (error) {
      failures.push(error as Error);
    }
  }
  newest.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  const chosen = newest[0];
  if (!chosen) throw failures[0] ?? new BackupNotFoundError(`no backup of ${database}`);
  return chosen.id;
}

/**
 * The copy the restore machine prepares and thaws: the backup resolved across the stores as
 * {@link planCopies} resolves it, in the nearest store whose copy can be read now (the one the
 * restore task will read); when every copy is archived, the nearest archived one, to be thawed.
 * A copy missing, damaged or unreadable is passed over; none found is the first store's error.
 */
export async function nearestCopy(
  stores: readonly RoleStore[],
  database: string,
  selector: BackupSelector,
): Promise<LocatedBackup & { readonly at: RoleStore }> {
  const backupId = await resolveBackupId(stores, database, selector);
  let archived: (LocatedBackup & { at: RoleStore }) | undefined;
  let firstError: unknown;
  for (const at of stores) {
    try {
      const located = await locateBackup(at.store, database, { kind: 'id', id: backupId });
      if (!located.archived) return { ...located, at };
      archived ??= { ...located, at };
    } catch (error) {
      firstError ??= error;
    }
  }
  if (archived) return archived;
  throw firstError ?? new BackupNotFoundError(`no copy of ${backupId}`);
}

/**
 * Whether a restore that failed on one copy goes on to the next: only for a copy whose bytes
 * did not match its manifest (CorruptBackupError), never for a failure of the target server or
 * of a check, which another copy of the same bytes would not change.
 */
export function nextAfterCorrupt(error: unknown, plan: CopyPlan, index: number): PassedOver | undefined {
  const copy = plan.candidates[index];
  if (!(error instanceof CorruptBackupError) || !copy || index + 1 >= plan.candidates.length)
    return undefined;
  return { role: copy.role, url: copy.store.url, reason: `damaged: ${error.message}` };
}
