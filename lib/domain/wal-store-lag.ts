import type { StoreRole } from './store-roles.js';
import { DEFAULT_SEGMENT_BYTES, parseWalFileName, segmentNumber, timelineOf } from './wal-names.js';

/** How one store's copy of the WAL archive stands against what the server has archived. */
export interface StoreWalLag {
  readonly role: StoreRole;
  readonly url: string;
  /** The store's newest segment on the timeline of the server's last archived one. */
  readonly newestSegment?: string;
  /** Segments the store lacks up to the server's last archived one; null when unknown. */
  readonly segmentsBehind: number | null;
  readonly ok: boolean;
  readonly detail: string;
}

/** The segment an archived name stands for: a segment, or the segment a .backup file is in. */
function segmentOf(name: string | undefined): string | undefined {
  const file = name ? parseWalFileName(name) : undefined;
  return file && (file.kind === 'segment' || file.kind === 'backup') ? name?.slice(0, 24) : undefined;
}

/**
 * A store's newest archived segment against the server's last archived one
 * (`pg_stat_archiver.last_archived_wal`): wal-push returns success only once every reachable
 * store holds a file, so a store without it missed pushes (degraded) and lacks WAL that the
 * other store alone holds.
 */
export function storeWalLag(
  store: { readonly role: StoreRole; readonly url: string },
  newestOn: (timeline: number) => string | undefined,
  lastArchivedWal: string | undefined,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): StoreWalLag {
  const where = `${store.role} store ${store.url}`;
  const reference = segmentOf(lastArchivedWal);
  if (!reference) {
    const newest = lastArchivedWal ? newestOn(timelineOf(lastArchivedWal)) : undefined;
    return {
      ...store,
      ...(newest ? { newestSegment: newest } : {}),
      segmentsBehind: null,
      ok: true,
      detail: `${where}: newest segment ${newest ?? 'none'}`,
    };
  }
  const newest = newestOn(timelineOf(reference));
  const behind = newest
    ? Math.max(0, segmentNumber(reference, segmentBytes) - segmentNumber(newest, segmentBytes))
    : null;
  const ok = behind === 0;
  const why = 'pushes to it failed (degraded): fix the store, then copy what it lacks with pgbp sync';
  return {
    ...store,
    ...(newest ? { newestSegment: newest } : {}),
    segmentsBehind: behind,
    ok,
    detail: ok
      ? `${where}: newest segment ${newest}, as the server's last archived`
      : newest
        ? `${where}: newest segment ${newest}, ${behind} segment(s) behind the server's last archived ${reference}; ${why}`
        : `${where}: holds no segment of timeline ${timelineOf(reference)}, the server's last archived is ${reference}; ${why}`,
  };
}
