import type { Config } from '../config.js';
import { walArchiveAlert } from '../domain/alerts.js';
import { archiveInfoKey, parseWalObjectKey, walFolder } from '../domain/physical-layout.js';
import {
  type ArchiveLag,
  type ArchiverView,
  archiveLag,
  WAL_LAG_SECONDS_METRIC,
  WAL_SEGMENTS_BEHIND_METRIC,
} from '../domain/wal-archive-health.js';
import {
  DEFAULT_SEGMENT_BYTES,
  parseLsn,
  parseWalFileName,
  segmentName,
  segmentNumber,
  segmentOfLsn,
  timelineOf,
} from '../domain/wal-names.js';
import type { Alerter } from '../notify/alerter.js';
import type { Logger } from '../platform/logger.js';
import { silentLogger } from '../platform/logger.js';
import type { MetricsSink } from '../platform/metrics.js';
import { type Connection, pgClient } from '../postgres/pg-tools.js';
import type { BackupStore } from '../storage/store.js';

/** What the server says of its WAL and its archiver. */
export interface ServerWal extends ArchiverView {
  readonly segmentBytes: number;
}

/** Thrown when the server cannot say how far it is: a standby, or no answer. */
export class WalWatchError extends Error {
  override readonly name = 'WalWatchError';
}

/** The server's current segment and its archiver's counters, in one round trip. */
export async function readServerWal(connection: Connection): Promise<ServerWal> {
  const client = await pgClient(connection);
  await client.connect();
  try {
    const { rows } = await client.query<{
      standby: boolean;
      current: string | null;
      lsn: string | null;
      segment_bytes: string;
      last_archived_wal: string | null;
      last_archived_time: Date | null;
      failed_count: string;
      last_failed_wal: string | null;
      last_failed_time: Date | null;
    }>(
      `select pg_is_in_recovery() as standby,
              case when pg_is_in_recovery() then null else pg_walfile_name(pg_current_wal_lsn()) end as current,
              case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as lsn,
              (select setting from pg_settings where name = 'wal_segment_size') as segment_bytes,
              a.last_archived_wal, a.last_archived_time, a.failed_count, a.last_failed_wal, a.last_failed_time
         from pg_stat_archiver a`,
    );
    const r = rows[0];
    if (!r) throw new WalWatchError('pg_stat_archiver returned no row');
    if (r.standby || !r.current || !r.lsn) {
      throw new WalWatchError(
        'the server is a standby: watch the primary, whose archive_command writes the archive',
      );
    }
    const segmentBytes = Number(r.segment_bytes) || DEFAULT_SEGMENT_BYTES;
    // pg_walfile_name names the segment before an LSN on a boundary (right after a switch):
    // the segment being written is the one holding the next byte.
    const lsn = parseLsn(r.lsn) ?? 0n;
    return {
      currentSegment: segmentOfLsn(lsn, timelineOf(r.current), segmentBytes),
      segmentBytes,
      failedCount: Number(r.failed_count),
      ...(r.last_archived_wal ? { lastArchivedWal: r.last_archived_wal } : {}),
      ...(r.last_archived_time ? { lastArchivedAt: new Date(r.last_archived_time) } : {}),
      ...(r.last_failed_wal ? { lastFailedWal: r.last_failed_wal } : {}),
      ...(r.last_failed_time ? { lastFailedAt: new Date(r.last_failed_time) } : {}),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The newest archived segment on the timeline of `current`, at most `current`: the folder of
 * its 4 GiB log, then the previous log's, and only when both are empty the whole timeline, so a
 * run every five minutes reads a few hundred keys, not fourteen days of WAL.
 */
export async function newestArchivedSegment(
  store: BackupStore,
  cluster: string,
  current: string,
  segmentBytes: number,
): Promise<{ readonly name: string; readonly at: Date } | undefined> {
  const timeline = timelineOf(current);
  const n = segmentNumber(current, segmentBytes);
  const newestIn = async (folder: string) => {
    let best: { name: string; at: Date } | undefined;
    for await (const o of store.list(folder)) {
      const parsed = parseWalObjectKey(o.key);
      const file = parsed ? parseWalFileName(parsed.name) : undefined;
      if (file?.kind !== 'segment' || timelineOf(file.name) !== timeline) continue;
      if (segmentNumber(file.name, segmentBytes) > n) continue;
      if (!best || file.name > best.name) best = { name: file.name, at: o.lastModified };
    }
    return best;
  };
  const folderOf = (name: string) =>
    `${walFolder(store.prefix, cluster, { name, kind: 'segment', timeline })}/`;
  const here = folderOf(current);
  const found = await newestIn(here);
  if (found || n === 0) return found;
  const previous = folderOf(segmentName(timeline, n - 1, segmentBytes));
  const before = previous !== here ? await newestIn(previous) : undefined;
  if (before) return before;
  return newestIn(`${archiveInfoKey(store.prefix, cluster).replace(/archive\.json$/, '')}wal/`);
}

export interface WalLagReport {
  readonly cluster: string;
  readonly at: string;
  readonly rpoSeconds: number;
  readonly serverSegment: string;
  readonly newestArchived: { readonly name: string; readonly at: string } | null;
  readonly lag: ArchiveLag;
  readonly alerts: readonly { readonly kind: string; readonly summary: string }[];
}

/**
 * The WAL watch: how far the archive is behind the server (segments, and seconds since the
 * newest stored one while any is missing), as metrics, and an alert when that breaks the RPO
 * (`wal-archive-stale`) or archive_command is failing (`wal-archive-failing`). An idle server,
 * whose current segment follows the newest archived one, is not stale however long it idles.
 */
export async function checkWalLag(options: {
  readonly store: BackupStore;
  readonly config: Config;
  readonly connection: Connection;
  readonly now: Date;
  readonly alerter: Alerter;
  readonly metrics: MetricsSink;
  readonly logger?: Logger;
}): Promise<WalLagReport> {
  const { store, config, now } = options;
  const log = options.logger ?? silentLogger;
  const cluster = config.wal.cluster;
  const server = await readServerWal(options.connection);
  const newest = await newestArchivedSegment(store, cluster, server.currentSegment, server.segmentBytes);
  const everPushed = newest !== undefined || (await store.head(archiveInfoKey(store.prefix, cluster)));
  const lag = archiveLag(
    server,
    newest ? { newestSegment: newest.name, newestAt: newest.at } : {},
    now,
    config.wal.rpo,
    server.segmentBytes,
  );
  options.metrics.emit(
    { Stage: config.stage, Cluster: cluster },
    [
      { name: WAL_LAG_SECONDS_METRIC, value: lag.lagSeconds, unit: 'Seconds' },
      { name: WAL_SEGMENTS_BEHIND_METRIC, value: lag.segmentsBehind, unit: 'Count' },
    ],
    now,
  );
  const alerts = [];
  const stale = lag.stale || !everPushed;
  if (stale) {
    const why = everPushed
      ? lag.reasons.filter((r) => !r.startsWith('archive_command is failing')).join('; ')
      : `nothing was ever archived to ${store.url} for this cluster (the server is at ${server.currentSegment}): check archive_mode and archive_command`;
    alerts.push(walArchiveAlert('wal-archive-stale', cluster, why, now));
  }
  if (lag.failing) {
    const why =
      lag.reasons.find((r) => r.startsWith('archive_command is failing')) ?? 'archive_command is failing';
    alerts.push(walArchiveAlert('wal-archive-failing', cluster, why, now));
  }
  for (const alert of alerts) await options.alerter.publish(alert);
  log.info('wal archive lag', {
    cluster,
    serverSegment: server.currentSegment,
    newestArchived: newest?.name ?? null,
    segmentsBehind: lag.segmentsBehind,
    lagSeconds: lag.lagSeconds,
    stale,
    failing: lag.failing,
  });
  return {
    cluster,
    at: now.toISOString(),
    rpoSeconds: Math.round(config.wal.rpo / 1000),
    serverSegment: server.currentSegment,
    newestArchived: newest ? { name: newest.name, at: newest.at.toISOString() } : null,
    lag: { ...lag, stale },
    alerts: alerts.map((a) => ({ kind: a.kind, summary: a.summary })),
  };
}
