import { existsSync } from 'node:fs';
import { readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_SEGMENT_BYTES, segmentName, segmentNumber, timelineOf } from '../domain/wal-names.js';
import { type FetchDeps, type FetchOutcome, fetchWal, locateWal, readVerified, walFileOf } from './fetch.js';
import { freeBytes, prefetchDir, spool, spooled, sweep, takeSpooled, tryLock } from './spool.js';

export interface PrefetchSettings {
  /** The data directory (restore_command's working directory), where the spool lives. */
  readonly dataDir: string;
  /** Segments fetched ahead (0: no prefetch). */
  readonly count: number;
  readonly concurrency: number;
}

const LOCK = '.prefetcher';
/** Spooled or temporary files older than this are left over from an earlier recovery. */
const STALE_MS = 15 * 60_000;
/** How long a fetch waits for a segment the prefetcher is fetching right now. */
const INFLIGHT_WAIT_MS = 10_000;

function inflightMarker(dir: string, name: string): string {
  return join(dir, `.${name}.inflight`);
}

async function prefetcherRunning(dir: string): Promise<boolean> {
  const pid = Number(await readFile(join(dir, LOCK), 'utf8').catch(() => ''));
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * restore_command with the spool: a segment the prefetcher already fetched and verified is
 * verified again and renamed into place; any other (missing, damaged, not yet there) is fetched
 * directly. Starts the prefetcher (a process of its own, through `startPrefetcher`) when fewer
 * than half the configured segments are spooled ahead.
 */
export async function fetchWithSpool(
  name: string,
  dest: string,
  deps: FetchDeps & PrefetchSettings & { readonly startPrefetcher: (after: string) => void },
): Promise<FetchOutcome> {
  const file = walFileOf(name);
  if (file.kind !== 'segment' || deps.count === 0) return fetchWal(name, dest, deps);
  const dir = prefetchDir(deps.dataDir);
  let entries = await spooled(dir);
  const running = await prefetcherRunning(dir);
  const ahead = [...entries.keys()].filter((n) => n > name && timelineOf(n) === file.timeline).length;
  if (!running && ahead < Math.ceil(deps.count / 2)) deps.startPrefetcher(name);
  if (!entries.has(name) && running && existsSync(inflightMarker(dir, name))) {
    const deadline = Date.now() + INFLIGHT_WAIT_MS;
    while (!entries.has(name) && existsSync(inflightMarker(dir, name)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      entries = await spooled(dir);
    }
  }
  const sha256 = entries.get(name);
  const bytes = sha256 ? await takeSpooled(dir, name, sha256, dest) : undefined;
  if (sha256 && bytes !== undefined) return { status: 'fetched', name, sha256, bytes };
  return fetchWal(name, dest, deps);
}

/**
 * The prefetcher: fetches the `count` segments after `after` into the spool, `concurrency` at a
 * time, each verified before it is spooled; stops at the end of the archive, when recovery has
 * ended, or when the disk has no room for more (wal-fetch then fetches directly). One runs at a
 * time per data directory; it exits once done.
 */
export async function prefetchAfter(after: string, deps: FetchDeps & PrefetchSettings): Promise<number> {
  const dir = prefetchDir(deps.dataDir);
  const release = await tryLock(join(dir, LOCK));
  if (!release) return 0;
  let spooledCount = 0;
  try {
    const timeline = timelineOf(after);
    await sweep(dir, (n) => n <= after || timelineOf(n) !== timeline, STALE_MS);
    const info = await deps.archive.info();
    const segmentBytes = info?.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    const have = await spooled(dir);
    const first = segmentNumber(after, segmentBytes) + 1;
    const room = Math.floor((await freeBytes(dir)) / segmentBytes) - 4;
    const wanted = Array.from({ length: deps.count }, (_, i) =>
      segmentName(timeline, first + i, segmentBytes),
    )
      .filter((n) => !have.has(n))
      .slice(0, Math.max(0, room));
    let end = wanted.length;
    let next = 0;
    // Recovery goes on while a signal file is there and the server runs.
    const recovering = () =>
      existsSync(join(deps.dataDir, 'postmaster.pid')) &&
      (existsSync(join(deps.dataDir, 'recovery.signal')) || existsSync(join(deps.dataDir, 'standby.signal')));
    const worker = async () => {
      while (next < end) {
        const i = next++;
        const name = wanted[i] as string;
        if (!recovering()) {
          end = i;
          return;
        }
        const marker = inflightMarker(dir, name);
        await writeFile(marker, '');
        try {
          const stored = await locateWal(walFileOf(name), deps);
          if (!stored) {
            end = Math.min(end, i);
            return;
          }
          const bytes = await readVerified(walFileOf(name), stored, deps);
          await spool(dir, name, stored.sha256, bytes);
          spooledCount++;
        } catch {
          // Damaged, unreadable, or no room: wal-fetch fetches this one directly and says why.
          end = Math.min(end, i);
          return;
        } finally {
          await unlink(marker).catch(() => {});
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, deps.concurrency) }, worker));
  } finally {
    await release();
    // A prefetcher that stopped early leaves no marker for a fetch to wait on.
    for (const n of await readdir(dir).catch(() => [] as string[])) {
      if (n.endsWith('.inflight')) await unlink(join(dir, n)).catch(() => {});
    }
  }
  return spooledCount;
}
