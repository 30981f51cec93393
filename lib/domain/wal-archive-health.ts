/**
 * How a WAL archive stands against its server and its RPO, and whether it is continuous. Pure:
 * used by `pgbp check`, `pgbp status` and the check-wal Lambda.
 */
import { DEFAULT_SEGMENT_BYTES, segmentName, segmentNumber, timelineOf } from './wal-names.js';

/** The metrics the WAL watch publishes per stage and cluster (the stack alarms on the first). */
export const WAL_LAG_SECONDS_METRIC = 'WalArchiveLagSeconds';
export const WAL_SEGMENTS_BEHIND_METRIC = 'WalArchiveSegmentsBehind';

export interface ArchiverView {
  /** The segment the server writes now (pg_walfile_name(pg_current_wal_lsn())). */
  readonly currentSegment: string;
  readonly lastArchivedWal?: string;
  readonly lastArchivedAt?: Date;
  readonly lastFailedWal?: string;
  readonly lastFailedAt?: Date;
  readonly failedCount: number;
}

export interface ArchiveView {
  /** The newest segment in the archive on the server's timeline, and when it was stored. */
  readonly newestSegment?: string;
  readonly newestAt?: Date;
}

export interface ArchiveLag {
  /** Complete segments the server has that the archive lacks (the one being written is not counted). */
  readonly segmentsBehind: number;
  /** How long the oldest missing segment has been waiting, at most: since the newest stored one. */
  readonly lagSeconds: number;
  /** The archive is behind by more than the RPO. */
  readonly stale: boolean;
  /** The archiver's latest attempt failed (its last failure is newer than its last success). */
  readonly failing: boolean;
  readonly reasons: readonly string[];
}

/**
 * The archive's lag behind the server. An idle server (its current segment follows the newest
 * archived one) is never stale, however long ago that was: it has nothing more to archive than
 * what archive_timeout will switch out.
 */
export function archiveLag(
  server: ArchiverView,
  archive: ArchiveView,
  now: Date,
  rpoMs: number,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): ArchiveLag {
  const reasons: string[] = [];
  const current = segmentNumber(server.currentSegment, segmentBytes);
  const newest = archive.newestSegment ? segmentNumber(archive.newestSegment, segmentBytes) : undefined;
  const segmentsBehind = newest === undefined ? 0 : Math.max(0, current - newest - 1);
  const lagMs =
    segmentsBehind > 0 && archive.newestAt ? Math.max(0, now.getTime() - archive.newestAt.getTime()) : 0;
  const stale = (segmentsBehind > 0 && lagMs > rpoMs) || (newest === undefined && server.failedCount > 0);
  if (newest === undefined) reasons.push('the archive holds no segment of the server’s timeline yet');
  if (stale && segmentsBehind > 0) {
    reasons.push(
      `the archive is ${segmentsBehind} segment(s) behind the server (newest archived ${archive.newestSegment}, server at ${server.currentSegment}) for ${Math.round(lagMs / 1000)} s, over the RPO of ${Math.round(rpoMs / 1000)} s`,
    );
  }
  const failing =
    server.lastFailedAt !== undefined &&
    (server.lastArchivedAt === undefined || server.lastFailedAt > server.lastArchivedAt);
  if (failing) {
    reasons.push(
      `archive_command is failing: the last attempt (${server.lastFailedWal ?? '?'} at ${server.lastFailedAt?.toISOString()}) failed after the last success${server.lastArchivedAt ? ` (${server.lastArchivedWal} at ${server.lastArchivedAt.toISOString()})` : ''}`,
    );
  }
  return { segmentsBehind, lagSeconds: Math.round(lagMs / 1000), stale, failing, reasons };
}

export interface ArchiveGap {
  readonly timeline: number;
  /** The first and last missing segment of a run of missing ones. */
  readonly from: string;
  readonly to: string;
  readonly missing: number;
}

/**
 * The holes in an archive: per timeline, each run of segments missing between the oldest and
 * the newest stored one (WAL-G's wal-verify). Other names (history, backup, partial) are ignored.
 */
export function archiveGaps(
  segments: Iterable<string>,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): ArchiveGap[] {
  const byTimeline = new Map<number, number[]>();
  for (const name of segments) {
    if (!/^[0-9A-F]{24}$/.test(name)) continue;
    const tl = timelineOf(name);
    const list = byTimeline.get(tl) ?? [];
    list.push(segmentNumber(name, segmentBytes));
    byTimeline.set(tl, list);
  }
  const gaps: ArchiveGap[] = [];
  for (const [timeline, numbers] of [...byTimeline.entries()].sort((a, b) => a[0] - b[0])) {
    const sorted = [...new Set(numbers)].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as number;
      const next = sorted[i] as number;
      if (next - prev > 1) {
        gaps.push({
          timeline,
          from: segmentName(timeline, prev + 1, segmentBytes),
          to: segmentName(timeline, next - 1, segmentBytes),
          missing: next - prev - 1,
        });
      }
    }
  }
  return gaps;
}
