import { listBaseBackups, listWal } from '../catalog/physical.js';
import type { Config } from '../config.js';
import { baseBackupKeys } from '../domain/physical-layout.js';
import { planBaseBackups } from '../domain/physical-retention.js';
import { type ArchiveGap, archiveGaps } from '../domain/wal-archive-health.js';
import { type ArchivedSegment, checkContinuity } from '../domain/wal-continuity.js';
import { parseLsn } from '../domain/wal-names.js';
import { zstdBuffer } from '../storage/small-objects.js';
import type { BackupStore } from '../storage/store.js';

export interface ClusterStatus {
  readonly cluster: string;
  readonly baseBackups: number;
  readonly newestBase: {
    readonly id: string;
    readonly stopTime: string;
    readonly ageHours: number;
    readonly sizeBytes: number;
  } | null;
  /** The span any second of which can be recovered: from the oldest usable base backup's end to the archive's newest WAL. */
  readonly window: { readonly from: string; readonly to: string } | null;
  /** Why the window is shorter than it could be (a gap in the archive), when it is. */
  readonly gap?: string;
  /** Every run of segments missing between the oldest and the newest stored one of a timeline. */
  readonly gaps: readonly ArchiveGap[];
  readonly lastDrill: {
    readonly baseId: string;
    readonly at: string;
    readonly rtoSeconds: number | null;
    readonly passed: boolean;
  } | null;
  /** Base backups retention would remove now (outside the PITR window and not its anchor). */
  readonly expired: number;
  /** Base backups stored before client-side encryption (plaintext). */
  readonly unencrypted: number;
  /** The newest full segment in this store's archive. */
  readonly newestSegment: { readonly name: string; readonly archivedAt: string } | null;
  /** Every full segment this store holds, for the lag between two stores (not printed). */
  readonly segments: readonly ArchivedSegment[];
}

/** Per cluster: the newest base backup, the recoverable window, the last PITR drill. */
export async function clusterStatus(options: {
  readonly store: BackupStore;
  readonly config: Config;
  readonly now: Date;
  readonly env: NodeJS.ProcessEnv;
}): Promise<ClusterStatus | undefined> {
  const { store, config, now } = options;
  const cluster = config.wal?.cluster;
  if (!cluster) return undefined;
  const { bases } = await listBaseBackups(store, cluster);
  const wal = await listWal(store, cluster);
  if (bases.length === 0 && wal.segments.length === 0) return undefined;
  const newest = bases[0];

  const histories = new Map<number, string>();
  for (const [tli, key] of wal.historyKeys) {
    histories.set(
      tli,
      (await zstdBuffer(await store.getBytes(key), 'decompress', options.env)).toString('utf8'),
    );
  }
  let window: ClusterStatus['window'] = null;
  let gap: string | undefined;
  for (const base of [...bases].reverse()) {
    const c = checkContinuity({
      base: {
        id: base.id,
        timeline: base.timeline,
        startLsn: parseLsn(base.startLsn) as bigint,
        stopLsn: parseLsn(base.stopLsn) as bigint,
      },
      target: { kind: 'latest' },
      segments: wal.segments,
      histories,
      segmentBytes: base.walSegmentBytes,
    });
    if (c.ok) {
      window = { from: base.stopTime, to: c.reachable.archivedAt };
      break;
    }
    gap ??= c.reason;
    if (c.reachable && base === newest) window = { from: base.stopTime, to: c.reachable.archivedAt };
  }

  let lastDrill: ClusterStatus['lastDrill'] = null;
  for (const base of bases) {
    const key = baseBackupKeys(store.prefix, cluster, base.id).drillReport;
    if (!(await store.head(key))) continue;
    try {
      const report = JSON.parse((await store.getBytes(key)).toString('utf8')) as {
        promotedAt?: string;
        startedAt?: string;
        rtoSeconds?: number;
        passed?: boolean;
      };
      lastDrill = {
        baseId: base.id,
        at: report.promotedAt ?? report.startedAt ?? '',
        rtoSeconds: report.rtoSeconds ?? null,
        passed: report.passed === true,
      };
    } catch {
      lastDrill = { baseId: base.id, at: '', rtoSeconds: null, passed: false };
    }
    break;
  }
  const { remove } = planBaseBackups(bases, now, config.pitr.window);
  return {
    cluster,
    baseBackups: bases.length,
    newestBase: newest
      ? {
          id: newest.id,
          stopTime: newest.stopTime,
          ageHours: (now.getTime() - Date.parse(newest.stopTime)) / 3_600_000,
          sizeBytes: newest.sizeBytes,
        }
      : null,
    window,
    ...(gap ? { gap } : {}),
    gaps: archiveGaps(
      wal.segments.map((s) => s.name),
      newest?.walSegmentBytes,
    ),
    lastDrill,
    expired: remove.length,
    unencrypted: bases.filter((b) => !b.encryption.envelope).length,
    newestSegment: newestOf(wal.segments),
    segments: wal.segments,
  };
}

function newestOf(segments: readonly ArchivedSegment[]): ClusterStatus['newestSegment'] {
  const last = segments.at(-1);
  return last ? { name: last.name, archivedAt: last.archivedAt.toISOString() } : null;
}

/** What an operator should know of a cluster's archive on a stage that requires encryption. */
export function clusterWarnings(cluster: ClusterStatus | undefined, config: Config): string[] {
  if (!cluster || !config.encryption?.required || cluster.unencrypted === 0) return [];
  const n = cluster.unencrypted;
  return [
    `cluster ${cluster.cluster}: ${n} base backup${n === 1 ? '' : 's'} stored before encryption (plaintext), on a stage that requires encryption; they stay readable until retention removes them`,
  ];
}
