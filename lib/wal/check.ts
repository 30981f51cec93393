import type { PassedOver } from '../domain/store-roles.js';
import { type ArchiveGap, type ArchiveLag, archiveGaps, archiveLag } from '../domain/wal-archive-health.js';
import { DEFAULT_SEGMENT_BYTES, parseWalFileName, timelineOf } from '../domain/wal-names.js';
import type { StoreWalLag } from '../domain/wal-store-lag.js';
import type { Clock } from '../platform/clock.js';
import { type Connection, pgClient } from '../postgres/pg-tools.js';
import type { RoleArchive, WalArchive } from './archive.js';
import { type CheckItem, listArchive, newestOn } from './check-listing.js';
import { checkStores } from './check-stores.js';

export { type ArchiveListing, type CheckItem, listArchive, newestOn } from './check-listing.js';

export interface ArchiveCheckReport {
  readonly ok: boolean;
  readonly cluster: string;
  readonly store: string;
  readonly checks: readonly CheckItem[];
  readonly lag?: ArchiveLag;
  readonly gaps: readonly ArchiveGap[];
  readonly newestSegment?: string;
  readonly storedSegments: number;
  /** Each store's newest segment against the server's last archived one (with two stores). */
  readonly stores?: readonly StoreWalLag[];
}

export interface CheckOptions {
  readonly archive: WalArchive;
  readonly connection: Connection;
  readonly rpoMs: number;
  readonly clock: Clock;
  /** What archive_command must name besides `wal-push`: the config file, or the store URL. */
  readonly expectInCommand?: string;
  /** How long the round trip waits for the switched segment to reach the archive; 0 skips it. */
  readonly roundTripMs: number;
  /**
   * Every configured store, the primary (`archive`) first, and those that could not be opened:
   * with more than one, each store's newest segment is checked against the server's.
   */
  readonly stores?: readonly RoleArchive[];
  readonly unavailable?: readonly PassedOver[];
}

interface ServerState {
  readonly settings: Record<string, string>;
  readonly systemIdentifier: string;
  readonly currentSegment: string;
  readonly archiver: {
    archived_count: string;
    last_archived_wal: string | null;
    last_archived_time: Date | null;
    failed_count: string;
    last_failed_wal: string | null;
    last_failed_time: Date | null;
  };
}

async function readServer(client: import('pg').Client): Promise<ServerState> {
  const settings = await client.query<{ name: string; setting: string }>(
    "select name, setting from pg_settings where name in ('wal_level', 'archive_mode', 'archive_command', 'archive_timeout', 'wal_segment_size')",
  );
  const id = await client.query<{ id: string }>(
    'select system_identifier::text as id from pg_control_system()',
  );
  const current = await client.query<{ name: string }>(
    'select pg_walfile_name(pg_current_wal_lsn()) as name',
  );
  const archiver = await client.query<ServerState['archiver']>('select * from pg_stat_archiver');
  return {
    settings: Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])),
    systemIdentifier: id.rows[0]?.id ?? '',
    currentSegment: current.rows[0]?.name ?? '',
    archiver: archiver.rows[0] as ServerState['archiver'],
  };
}

/**
 * `pgbp check`: the server's settings for archiving with pgbp, its archiver's state, the
 * archive's identity, lag and continuity, and a round trip (a WAL switch, then the switched
 * segment waited for in the archive). Each failed item is one problem.
 */
export async function checkArchive(options: CheckOptions): Promise<ArchiveCheckReport> {
  const { archive } = options;
  const checks: CheckItem[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const client = await pgClient(options.connection);
  await client.connect();
  try {
    const server = await readServer(client);
    const s = server.settings;
    add(
      'wal_level',
      s.wal_level === 'replica' || s.wal_level === 'logical',
      `wal_level = ${s.wal_level}${s.wal_level === 'minimal' ? ': expected replica or logical' : ''}`,
    );
    const modeOk = s.archive_mode === 'on' || s.archive_mode === 'always';
    add(
      'archive_mode',
      modeOk,
      `archive_mode = ${s.archive_mode}${modeOk ? '' : ': expected on (archiving is off)'}`,
    );
    const command = s.archive_command ?? '';
    const pointsAtPgbp =
      /\bwal-push\b/.test(command) &&
      /pgbp/.test(command) &&
      (!options.expectInCommand || command.includes(options.expectInCommand));
    add(
      'archive_command',
      pointsAtPgbp,
      pointsAtPgbp
        ? `archive_command = ${command}`
        : `archive_command = ${JSON.stringify(command)}: expected pgbp wal-push %p${options.expectInCommand ? ` with ${options.expectInCommand}` : ''}`,
    );
    const timeoutS = Number(s.archive_timeout ?? 0);
    const timeoutOk = timeoutS > 0 && timeoutS * 1000 <= options.rpoMs;
    add(
      'archive_timeout',
      timeoutOk,
      `archive_timeout = ${timeoutS} s${timeoutOk ? '' : `: expected between 1 s and the RPO (${Math.round(options.rpoMs / 1000)} s), or a quiet server's last commits wait for the next segment`}`,
    );
    const segmentBytes = Number(s.wal_segment_size ?? 0) || DEFAULT_SEGMENT_BYTES;

    const info = await archive.info();
    if (!info)
      add(
        'archive',
        false,
        `no WAL archive ${archive.cluster} in ${archive.store.url} yet: nothing was ever pushed`,
      );
    else {
      const same = info.systemIdentifier === server.systemIdentifier;
      add(
        'archive',
        same,
        same
          ? `archive ${archive.cluster} in ${archive.store.url} holds this cluster's WAL (system identifier ${info.systemIdentifier})`
          : `archive ${archive.cluster} in ${archive.store.url} holds WAL of system identifier ${info.systemIdentifier}, this server is ${server.systemIdentifier}`,
      );
    }

    const a = server.archiver;
    const view = {
      currentSegment: server.currentSegment,
      failedCount: Number(a.failed_count),
      ...(a.last_archived_wal ? { lastArchivedWal: a.last_archived_wal } : {}),
      ...(a.last_archived_time ? { lastArchivedAt: new Date(a.last_archived_time) } : {}),
      ...(a.last_failed_wal ? { lastFailedWal: a.last_failed_wal } : {}),
      ...(a.last_failed_time ? { lastFailedAt: new Date(a.last_failed_time) } : {}),
    };
    let listing = await listArchive(archive);
    const timeline = timelineOf(server.currentSegment);
    const newest = newestOn(listing, timeline);
    const lag = archiveLag(
      view,
      newest ? { newestSegment: newest.name, newestAt: newest.at } : {},
      options.clock.now(),
      options.rpoMs,
      segmentBytes,
    );
    add(
      'archiver',
      !lag.failing,
      lag.failing
        ? (lag.reasons.find((r) => r.startsWith('archive_command is failing')) ??
            'archive_command is failing')
        : `pg_stat_archiver: ${a.archived_count} archived, ${a.failed_count} failed, none since the last success`,
    );
    add(
      'lag',
      !lag.stale,
      lag.stale
        ? (lag.reasons.find((r) => r.includes('behind')) ?? lag.reasons.join('; '))
        : `the archive is ${lag.segmentsBehind} segment(s) behind the server (${server.currentSegment})`,
    );

    if (options.roundTripMs > 0 && modeOk && pointsAtPgbp) {
      const switched = await client.query<{ name: string }>(
        'select pg_walfile_name(pg_switch_wal()) as name',
      );
      const name = switched.rows[0]?.name ?? '';
      const file = parseWalFileName(name);
      const deadline = Date.now() + options.roundTripMs;
      let arrived = false;
      while (file && !arrived && Date.now() < deadline) {
        arrived = (await archive.find(file)).length > 0;
        if (!arrived) await new Promise((r) => setTimeout(r, 250));
      }
      add(
        'round trip',
        arrived,
        arrived
          ? `switched WAL: ${name} reached the archive`
          : `switched WAL: ${name} did not reach the archive within ${Math.round(options.roundTripMs / 1000)} s`,
      );
      if (arrived) listing = await listArchive(archive);
    }

    const gaps = archiveGaps(listing.segments.keys(), segmentBytes);
    add(
      'continuity',
      gaps.length === 0,
      gaps.length === 0
        ? `${listing.segments.size} segment(s) stored, no gap`
        : `missing from the archive: ${gaps.map((g) => (g.from === g.to ? g.from : `${g.from}..${g.to}`)).join(', ')}`,
    );
    let storeLags: StoreWalLag[] | undefined;
    if ((options.stores?.length ?? 0) + (options.unavailable?.length ?? 0) > 1) {
      // Read again after the round trip, before the stores are listed (see checkStores).
      const archived = await client.query<{ wal: string | null }>(
        'select last_archived_wal as wal from pg_stat_archiver',
      );
      const lastArchivedWal = archived.rows[0]?.wal ?? a.last_archived_wal ?? undefined;
      const { items, lags } = await checkStores(options.stores ?? [], options.unavailable ?? [], {
        systemIdentifier: server.systemIdentifier,
        segmentBytes,
        ...(lastArchivedWal ? { lastArchivedWal } : {}),
      });
      checks.push(...items);
      storeLags = lags;
    }
    const newestNow = newestOn(listing, timeline);
    return {
      ok: checks.every((c) => c.ok),
      cluster: archive.cluster,
      store: archive.store.url,
      checks,
      lag,
      gaps,
      ...(newestNow ? { newestSegment: newestNow.name } : {}),
      storedSegments: listing.segments.size,
      ...(storeLags ? { stores: storeLags } : {}),
    };
  } finally {
    await client.end().catch(() => {});
  }
}
