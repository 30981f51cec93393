import type { StoreSyncProblem, StoreSyncProblems } from '../domain/alerts.js';
import type { StoreRole } from '../domain/store-roles.js';
import type { RoleStore } from '../storage/store-roles.js';
import type { SyncedPhysical } from './physical-report.js';
import { StoreUnreadableError } from './store-unreadable.js';
import type { SyncedBackup } from './sync.js';

/** The problems an alert names; the count covers them all. */
const SHOWN = 10;

/** A sync that could not run at all (a store could not be read, say). */
export interface SyncAborted {
  /** What was being synced: `the backups of app`, `the physical archive of cluster main`. */
  readonly subject: string;
  readonly error: Error;
}

/**
 * What of a run's sync leaves the stores apart: each copy that failed, each conflict, and each
 * sync that could not run. Skipped entries are not problems (the target's retention would not
 * keep them, an archived copy awaits a thaw, or another run stored the same bytes meanwhile).
 */
export function syncProblems(
  stores: readonly RoleStore[],
  backups: readonly SyncedBackup[],
  physical: readonly SyncedPhysical[],
  aborted: readonly SyncAborted[],
): StoreSyncProblems {
  const urlOf = (role: StoreRole) => stores.find((s) => s.role === role)?.store.url ?? role;
  const all: StoreSyncProblem[] = [
    ...aborted.map((a) => {
      // The store that could not be read, where the sync knows it; else both, as neither was synced.
      const at = a.error instanceof StoreUnreadableError ? a.error : undefined;
      return {
        role: at?.role ?? stores.map((s) => s.role).join(' and '),
        url: at?.url ?? stores.map((s) => s.store.url).join(' and '),
        status: 'failed' as const,
        subject: `${a.subject}: not synced`,
        cause: a.error.message,
      };
    }),
    ...backups
      .filter((b) => b.status === 'failed')
      .map((b) => ({
        role: b.to,
        url: urlOf(b.to),
        status: 'failed' as const,
        subject: `backup ${b.backupId} of ${b.database} (in the ${b.from} store)`,
        cause: b.reason ?? 'unknown cause',
      })),
    ...physical
      .filter((p) => p.status === 'failed' || p.status === 'conflict')
      .map((p) => ({
        role: p.to,
        url: urlOf(p.to),
        status: p.status as 'failed' | 'conflict',
        subject: `${p.kind === 'base' ? 'base backup' : p.kind === 'archive' ? 'the archive' : `WAL ${p.kind}`} ${p.name} of cluster ${p.cluster}`,
        cause: p.reason ?? 'unknown cause',
      })),
  ];
  return { count: all.length, shown: all.slice(0, SHOWN) };
}
