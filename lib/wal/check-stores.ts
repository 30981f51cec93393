import type { PassedOver } from '../domain/store-roles.js';
import { archiveGaps } from '../domain/wal-archive-health.js';
import { type StoreWalLag, storeWalLag } from '../domain/wal-store-lag.js';
import type { RoleArchive } from './archive.js';
import { type CheckItem, listArchive, newestOn } from './check-listing.js';

/**
 * With two stores, `pgbp check`'s line per store: its identity, and its newest segment against
 * the server's last archived one, so that a store whose pushes failed (degraded) is a problem
 * named by its store, although the other store keeps the archive going. Each store is listed
 * after the server's last archived name was read, so one the archiver archives meanwhile is
 * never taken for missing.
 */
export async function checkStores(
  stores: readonly RoleArchive[],
  unavailable: readonly PassedOver[],
  server: {
    readonly systemIdentifier: string;
    readonly lastArchivedWal?: string;
    readonly segmentBytes: number;
  },
): Promise<{ items: CheckItem[]; lags: StoreWalLag[] }> {
  const items: CheckItem[] = unavailable.map((u) => ({
    name: `store ${u.role}`,
    ok: false,
    detail: `${u.role} store ${u.url}: ${u.reason}`,
  }));
  const lags: StoreWalLag[] = [];
  for (const { role, archive } of stores) {
    const url = archive.store.url;
    const name = `store ${role}`;
    try {
      const listing = await listArchive(archive);
      const info = await archive.info();
      if (info && info.systemIdentifier !== server.systemIdentifier) {
        items.push({
          name,
          ok: false,
          detail: `${role} store ${url}: holds WAL of system identifier ${info.systemIdentifier}, this server is ${server.systemIdentifier}`,
        });
        continue;
      }
      const lag = storeWalLag(
        { role, url },
        (timeline) => newestOn(listing, timeline)?.name,
        server.lastArchivedWal,
        server.segmentBytes,
      );
      lags.push(lag);
      // A store that missed pushes and has newer ones since lacks segments in between.
      const gaps = archiveGaps(listing.segments.keys(), server.segmentBytes);
      const holes = gaps.map((g) => (g.from === g.to ? g.from : `${g.from}..${g.to}`)).join(', ');
      items.push({
        name,
        ok: lag.ok && gaps.length === 0,
        detail:
          gaps.length === 0
            ? lag.detail
            : `${lag.detail}; missing from it: ${holes} (pgbp sync copies them from the other store)`,
      });
    } catch (error) {
      items.push({
        name,
        ok: false,
        detail: `${role} store ${url}: cannot be read: ${(error as Error).message}`,
      });
    }
  }
  return { items, lags };
}
