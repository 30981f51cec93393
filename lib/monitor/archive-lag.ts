import type { StoreRole } from '../domain/store-roles.js';
import type { ArchivedSegment } from '../domain/wal-continuity.js';

/** How far one store's WAL archive trails the other's: what it lacks of what the other holds. */
export interface ArchiveLag {
  readonly cluster: string;
  /** The store that lacks segments the other holds. */
  readonly behind: StoreRole;
  readonly ahead: StoreRole;
  /** Segments the other store holds and this one lacks (past this one's oldest: older ones are retention's). */
  readonly segments: number;
  /** The oldest of them, and how long ago the other store archived it: what a loss of the other store now would cost. */
  readonly oldestMissing: string;
  readonly seconds: number;
  /** Whether that is more than the recovery point objective (config `wal.rpo`). */
  readonly overRpo: boolean;
}

/**
 * The lag of each store behind the other, for one cluster: the segments one holds and the other
 * lacks (a tail not yet copied, or a hole left while it was down), and how long ago the oldest
 * of them was archived. Segments older than a store's own oldest are left out: retention may
 * have removed them there. Empty when neither lacks anything. Pure: `now` is the caller's.
 */
export function archiveLag(options: {
  readonly cluster: string;
  readonly stores: readonly { readonly role: StoreRole; readonly segments: readonly ArchivedSegment[] }[];
  readonly now: Date;
  readonly rpoMs: number;
}): ArchiveLag[] {
  const [a, b] = options.stores;
  if (!a || !b) return [];
  const lags: ArchiveLag[] = [];
  for (const [behind, ahead] of [
    [b, a],
    [a, b],
  ] as const) {
    const held = new Set(behind.segments.map((s) => s.name));
    const oldest = behind.segments[0]?.name;
    const lacking = ahead.segments.filter(
      (s) => !held.has(s.name) && (oldest === undefined || s.name > oldest),
    );
    const first = lacking.reduce<ArchivedSegment | undefined>(
      (min, s) => (min === undefined || s.archivedAt < min.archivedAt ? s : min),
      undefined,
    );
    if (!first) continue;
    const ms = Math.max(0, options.now.getTime() - first.archivedAt.getTime());
    lags.push({
      cluster: options.cluster,
      behind: behind.role,
      ahead: ahead.role,
      segments: lacking.length,
      oldestMissing: first.name,
      seconds: ms / 1000,
      overRpo: ms > options.rpoMs,
    });
  }
  return lags;
}
