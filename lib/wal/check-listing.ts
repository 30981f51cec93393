import { parseWalObjectKey } from '../domain/physical-layout.js';
import { parseWalFileName, timelineOf } from '../domain/wal-names.js';
import type { WalArchive } from './archive.js';

export interface CheckItem {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** What one listing of the archive says: its segments, newest first on each timeline. */
export interface ArchiveListing {
  readonly segments: Map<string, Date>;
  readonly names: Set<string>;
}

export async function listArchive(archive: WalArchive): Promise<ArchiveListing> {
  const segments = new Map<string, Date>();
  const names = new Set<string>();
  const prefix = `${archive.infoKey.replace(/archive\.json$/, '')}wal/`;
  for await (const o of archive.store.list(prefix)) {
    const parsed = parseWalObjectKey(o.key);
    if (!parsed) continue;
    names.add(parsed.name);
    if (parseWalFileName(parsed.name)?.kind === 'segment') segments.set(parsed.name, o.lastModified);
  }
  return { segments, names };
}

/** The newest stored segment of a timeline, and when it was stored. */
export function newestOn(listing: ArchiveListing, timeline: number): { name: string; at: Date } | undefined {
  let best: { name: string; at: Date } | undefined;
  for (const [name, at] of listing.segments) {
    if (timelineOf(name) === timeline && (!best || name > best.name)) best = { name, at };
  }
  return best;
}
