import type { StoreRole } from '../domain/store-roles.js';
import type { WalFileKind } from '../domain/wal-names.js';

/**
 * What `pgbp sync` reports of the physical archive: one entry per WAL file or base backup one
 * store lacked, and the entries counted per cluster, direction, kind and status.
 */

/** What part of the physical archive an entry of the report is. */
export type PhysicalKind = WalFileKind | 'base' | 'archive';

/** What became of one file (or base backup) of the physical archive that one store lacked. */
export interface SyncedPhysical {
  readonly cluster: string;
  readonly kind: PhysicalKind;
  /** The WAL file's name, or the base backup's id. */
  readonly name: string;
  readonly from: StoreRole;
  readonly to: StoreRole;
  /**
   * copied: verified and stored; failed: nothing stored (the source's copy is damaged or could
   * not be read or written); skipped: left for a reason; conflict: the target holds the name
   * with other contents, left as it is.
   */
  readonly status: 'copied' | 'failed' | 'skipped' | 'conflict';
  readonly reason?: string;
  /** Bytes stored in the target. */
  readonly bytes?: number;
}

/** How many entries of one kind, one way, one status: the report's summary lines. */
export interface PhysicalTally {
  readonly cluster: string;
  readonly from: StoreRole;
  readonly to: StoreRole;
  readonly kind: PhysicalKind;
  readonly status: SyncedPhysical['status'];
  readonly count: number;
  readonly bytes: number;
}

/** The report counted per cluster, direction, kind and status, in the order first seen. */
export function tallyPhysical(results: readonly SyncedPhysical[]): PhysicalTally[] {
  const tallies = new Map<string, PhysicalTally>();
  for (const r of results) {
    const key = [r.cluster, r.from, r.to, r.kind, r.status].join('\0');
    const t = tallies.get(key);
    tallies.set(key, {
      cluster: r.cluster,
      from: r.from,
      to: r.to,
      kind: r.kind,
      status: r.status,
      count: (t?.count ?? 0) + 1,
      bytes: (t?.bytes ?? 0) + (r.bytes ?? 0),
    });
  }
  return [...tallies.values()];
}
