/**
 * The watchdog's judgement, independent of whether the pipeline ran: how old is the newest
 * good backup, and is there room left where the backups are kept.
 */

export interface StalenessVerdict {
  readonly database: string;
  readonly newestId: string | null;
  readonly newestCreatedAt: string | null;
  /** Hours since the newest good backup was taken; null when there is none. */
  readonly ageHours: number | null;
  readonly staleAfterHours: number;
  readonly stale: boolean;
}

/**
 * A database is stale when its newest good backup was taken more than `staleAfter` ms before
 * `now`, or when it has none. Age counts from the backup's start: that is the moment the data
 * is from.
 */
export function assessStaleness(
  database: string,
  newest: { readonly id: string; readonly createdAt: Date } | undefined,
  now: Date,
  staleAfter: number,
): StalenessVerdict {
  const staleAfterHours = staleAfter / 3_600_000;
  if (!newest) {
    return { database, newestId: null, newestCreatedAt: null, ageHours: null, staleAfterHours, stale: true };
  }
  const ageMs = now.getTime() - newest.createdAt.getTime();
  return {
    database,
    newestId: newest.id,
    newestCreatedAt: newest.createdAt.toISOString(),
    ageHours: Math.round((ageMs / 3_600_000) * 100) / 100,
    staleAfterHours,
    stale: ageMs > staleAfter,
  };
}

export interface FreeSpaceVerdict {
  readonly totalBytes: number;
  readonly freeBytes: number;
  readonly freeRatio: number;
  readonly minFreeRatio: number;
  readonly low: boolean;
}

/** Free space against the guide's floor (20 % by default). */
export function assessFreeSpace(
  space: { readonly totalBytes: number; readonly freeBytes: number },
  minFreeRatio: number,
): FreeSpaceVerdict {
  const freeRatio = space.totalBytes > 0 ? space.freeBytes / space.totalBytes : 0;
  return { ...space, freeRatio, minFreeRatio, low: freeRatio < minFreeRatio };
}

/**
 * The databases the watchdog answers for: the configured ones; when the config names none,
 * every database found in the store.
 */
export function watchedDatabases(configured: readonly string[], stored: readonly string[]): string[] {
  return configured.length > 0 ? [...new Set(configured)] : [...new Set(stored)].sort();
}
