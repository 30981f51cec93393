import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_SEGMENT_BYTES,
  segmentName,
  segmentNumber,
  timelineOf,
  type WalFileName,
} from '../domain/wal-names.js';
import { ABSENT_FRESH_S, askedRecord, dropAbsent, forgetAbsent, writeAbsent } from './absent.js';
import { ListedWalArchive } from './archive.js';
import { cksumOf } from './cksum.js';
import {
  archiveInfo,
  type FetchDeps,
  type FetchOutcome,
  fetchWal,
  type LocatedWal,
  locateWal,
  readVerified,
  storeOf,
  walFileOf,
  writeAtomically,
} from './fetch.js';
import { SegmentDecoder } from './segment-decoder.js';
import {
  freeBytes,
  inflightMarker,
  prefetchDir,
  prefetcherLock,
  prefetcherRunning,
  readPosition,
  removeFile,
  spool,
  spooled,
  sweep,
  takeFromSpool,
  tryLock,
  writePosition,
} from './spool.js';
import { type StoredSegment, spoolStored } from './spool-stored.js';

export interface PrefetchSettings {
  /** The data directory (restore_command's working directory), where the spool lives. */
  readonly dataDir: string;
  /** Which archive's spool (see archiveTag in spool.ts). */
  readonly tag: string;
  /** Segments kept fetched ahead of recovery (0: no prefetch). */
  readonly count: number;
  readonly concurrency: number;
}

/** Spooled or temporary files older than this are left over from an earlier recovery. */
const STALE_MS = 15 * 60_000;
/** How long a fetch waits for a segment the prefetcher is fetching right now. */
export const INFLIGHT_WAIT_MS = 10_000;
/** How often the prefetcher looks where recovery is. */
const POLL_MS = 20;
/**
 * How often, once it holds every segment of its window, the prefetcher looks whether recovery has
 * moved on: recovery takes at least ~40 ms a segment, so the spool is never near empty, and each
 * look (the position read, the spool listed, by every worker) costs CPU beside the recovery.
 */
const FULL_POLL_MS = 100;
/** A prefetcher whose recovery asks for nothing new for this long exits; the next fetch starts another. */
const IDLE_MS = 30_000;
/** A segment the archive did not hold yet is asked for again after this (a standby's archive grows). */
const MISSING_RETRY_MS = 1_000;
/** How often the "not archived" records of the history files are renewed (see absent.ts). */
const HISTORY_RENEW_MS = 1_000;

/**
 * How many prefetches run at once unless configured: one when every store is a directory, where
 * a segment costs only CPU and a second worker at once takes it from the recovery beside it on the
 * same cores (bench:wal's file-store replay, fsync off: 6-17% faster with one, and less CPU); two
 * when a store is S3, where each segment also waits on the store's round trips.
 */
export function defaultPrefetchConcurrency(archives: FetchDeps['archives']): number {
  return archives.every(({ archive }) => archive.store.url.startsWith('file://')) ? 1 : 2;
}

/**
 * restore_command with the spool, when the fast path (cli/wal-fast-path.ts) could not answer: a
 * segment the prefetcher fetched and verified (or is fetching) is verified again and renamed
 * into place; any other (missing, damaged, not there) is fetched directly. Starts the prefetcher
 * (a process of its own, through `startPrefetcher`) when none runs.
 */
export async function fetchWithSpool(
  name: string,
  dest: string,
  deps: FetchDeps & PrefetchSettings & { readonly startPrefetcher: (after: string) => void },
): Promise<FetchOutcome> {
  const file = walFileOf(name);
  if (file.kind !== 'segment' || deps.count === 0) return fetchWal(name, dest, deps);
  const dir = prefetchDir(deps.dataDir, deps.tag);
  const taken = await takeFromSpool(dir, name, dest, INFLIGHT_WAIT_MS);
  const started = async () => {
    if (!(await prefetcherRunning(dir))) deps.startPrefetcher(name);
  };
  if (taken) {
    await writePosition(dir, name);
    await started();
    return { status: 'fetched', name, ...taken };
  }
  const stored = await locateWal(file, deps);
  // The position is the last segment handed over: past the archive's end recovery asks for
  // that one again (the prefetcher keeps it spooled), then ends.
  if (stored) await writePosition(dir, name);
  await started();
  if (!stored) return { status: 'missing', name };
  const bytes = await readVerified(file, stored, deps);
  await writeAtomically(dest, bytes);
  return { status: 'fetched', name, sha256: stored.sha256, bytes: bytes.length };
}

/**
 * The prefetcher (pgBackRest's asynchronous archive-get): keeps the `count` segments after the
 * one recovery was handed last (the spool's position, which every fetch of a segment writes)
 * fetched, verified and spooled, `concurrency` at a time, for as long as the recovery runs;
 * past the archive's end, that last one again (recovery asks for it once more). A segment is
 * spooled under its name only once complete and verified. It leaves a segment to wal-fetch (which
 * then fetches it directly and says why) when it is damaged or unreadable, stops fetching when
 * the disk has no room, and exits once recovery has ended (removing what is left spooled) or
 * has asked for nothing new for a while. One runs at a time per spool. What the archive lacks of
 * what recovery will ask for (the segment past its end, the history files of the timeline and of
 * the next one) it records as "not archived", renewed while it runs (absent.ts), for the
 * launcher to answer without starting Node.
 */
export async function prefetchAhead(after: string, deps: FetchDeps & PrefetchSettings): Promise<number> {
  const dir = prefetchDir(deps.dataDir, deps.tag);
  const release = await tryLock(prefetcherLock(dir));
  if (!release) return 0;
  let spooledCount = 0;
  try {
    // Each WAL folder listed once for the segments in it, afresh for a segment it lacked.
    // (Its identity read through it: the archive is then known to be there, see ListedWalArchive.)
    const listed: FetchDeps = {
      ...deps,
      archives: deps.archives.map(({ role, archive }) => ({
        role,
        archive: new ListedWalArchive(archive.store, archive.cluster),
      })),
    };
    const info = await archiveInfo(listed);
    const segmentBytes = info?.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    let position = after;
    let movedAt = Date.now();
    sweep(dir, (n) => n < position || timelineOf(n) !== timelineOf(position), STALE_MS);
    const inflight = new Set<string>();
    /** The names the archive lacked, whose "not archived" records (absent.ts) this wrote. */
    const recorded = new Set<string>();
    /** What the archive says of `name` now, as a record the launcher may answer from. */
    const lookUp = async (name: string) => {
      const askedAt = Date.now();
      try {
        const stored = await locateWal(walFileOf(name), listed);
        if (stored) dropAbsent(dir, name);
        else {
          await writeAbsent(dir, name, askedAt);
          recorded.add(name);
        }
        return stored;
      } catch (error) {
        // Never "not archived" from a lookup that failed.
        dropAbsent(dir, name);
        throw error;
      } finally {
        // Answered: a call that took the record waits for this (cli/pgbp's renewed_answer).
        removeFile(askedRecord(dir, name));
      }
    };
    /** Left to wal-fetch: damaged or unreadable here. */
    const refused = new Set<string>();
    /**
     * The segments it spooled, until recovery has gone past them. One that has left the spool was
     * taken (or removed as damaged): recovery asks for each segment once (the archive's last twice,
     * see `again`), and the launcher renames an entry into place before it writes the position, so a
     * pick between the two would find the segment after the position missing and fetch it again
     * (about one segment in four did so from S3 and one in six from a directory, each at the cost
     * of a whole fetch, decode and digest).
     */
    const handed = new Set<string>();
    let missing: { readonly name: string; readonly at: number } | undefined;
    let noRoomAt = 0;
    // Recovery goes on while a signal file is there and the server runs.
    const recovering = () =>
      existsSync(join(deps.dataDir, 'postmaster.pid')) &&
      (existsSync(join(deps.dataDir, 'recovery.signal')) || existsSync(join(deps.dataDir, 'standby.signal')));

    const look = () => {
      const now = readPosition(dir);
      if (now && now !== position && (now > position || timelineOf(now) !== timelineOf(position))) {
        position = now;
        movedAt = Date.now();
        for (const n of handed) if (n < position || timelineOf(n) !== timelineOf(position)) handed.delete(n);
        sweep(dir, (n) => n < position || timelineOf(n) !== timelineOf(position), STALE_MS);
      }
    };
    /** Positions spooled again at the archive's end (once each). */
    const again = new Set<string>();
    /**
     * The next segment to fetch, or none: `full` when every one of the window is spooled or in
     * flight. The name returned is in flight already: claimed before anything else is awaited, so
     * that another worker's pick, on the same listing of the spool, does not take it too (both
     * would fetch and decode it, into the same temporary files).
     */
    const pick = (): { readonly name?: string; readonly full?: true } => {
      const have = spooled(dir);
      const timeline = timelineOf(position);
      const first = segmentNumber(position, segmentBytes) + 1;
      // Past the archive's end PostgreSQL asks once more for the last segment it replayed (to
      // end recovery on it): that one is spooled again, so the launcher answers that call too.
      if (missing?.name === segmentName(timeline, first, segmentBytes) && !again.has(position)) {
        if (!have.has(position) && !inflight.has(position) && !refused.has(position)) {
          again.add(position);
          inflight.add(position);
          return { name: position };
        }
      }
      for (let i = 0; i < deps.count; i++) {
        const name = segmentName(timeline, first + i, segmentBytes);
        if (missing && name >= missing.name && Date.now() - missing.at < MISSING_RETRY_MS) {
          // Its record answered a call: recovery may ask again at once (it does, past the
          // archive's end), and each answer is of a lookup made after the call before.
          if (name !== missing.name || !existsSync(askedRecord(dir, name))) return {};
        }
        if (have.has(name) || inflight.has(name) || refused.has(name) || handed.has(name)) continue;
        inflight.add(name);
        return { name };
      }
      return { full: true };
    };

    /** Spools one archived segment, unless recovery has gone past it meanwhile. */
    const spoolSegment = async (
      file: WalFileName,
      stored: LocatedWal,
      decoder: SegmentDecoder,
    ): Promise<boolean> => {
      try {
        // A directory store's object is read by zstd from its own file, not copied through here;
        // an S3 object by a plain GET (lib/storage/s3-direct-get.ts), its failures read again below.
        const store = storeOf(stored, deps);
        const path = store.capabilities.local?.fileOf?.(stored.key);
        const source: StoredSegment = path
          ? { file: path }
          : {
              body:
                (await store.capabilities.directGet?.open(stored.key)) ?? (await store.getStream(stored.key)),
            };
        if (file.name < position) {
          if ('body' in source) source.body.destroy();
          return false;
        }
        await spoolStored(dir, file.name, stored.sha256, source, decoder);
        return true;
      } catch {
        // Read again through the checked fetch, which retries, and says in its error what is wrong.
      }
      const bytes = await readVerified(file, stored, deps);
      if (file.name < position) return false;
      // The launcher's check (cli/pgbp): the CRC of these verified bytes.
      await spool(dir, file.name, stored.sha256, bytes, await cksumOf(bytes, deps.env));
      return true;
    };

    const worker = async () => {
      // Its decoding shell (see segment-decoder.ts), started at its first segment.
      const decoder = new SegmentDecoder(deps.env);
      try {
        await work(decoder);
      } finally {
        await decoder.close();
      }
    };
    const work = async (decoder: SegmentDecoder) => {
      for (;;) {
        if (!recovering()) return;
        look();
        const { name, full } = Date.now() - noRoomAt < MISSING_RETRY_MS ? {} : pick();
        if (!name) {
          if (Date.now() - movedAt > IDLE_MS) return;
          await sleep(full ? FULL_POLL_MS : POLL_MS);
          continue;
        }
        if (freeBytes(dir) < 4 * segmentBytes) {
          inflight.delete(name);
          noRoomAt = Date.now();
          continue;
        }
        const marker = inflightMarker(dir, name);
        try {
          writeFileSync(marker, '');
          const file = walFileOf(name);
          const stored = await lookUp(name);
          if (!stored) {
            // The first name the archive lacks: two workers may find two of them missing.
            missing = { name: missing && missing.name < name ? missing.name : name, at: Date.now() };
            continue;
          }
          if (missing && name >= missing.name) missing = undefined;
          if (name >= position && (await spoolSegment(file, stored, decoder))) {
            handed.add(name);
            spooledCount++;
          }
        } catch {
          // Damaged, unreadable, or no room: wal-fetch fetches this one directly and says why.
          refused.add(name);
        } finally {
          inflight.delete(name);
          removeFile(marker);
        }
      }
    };
    // Recovery asks for the history files of its timeline and of the next one at its start, at
    // its end, and (a standby) each time it finds no next segment; the archive rarely has them.
    // Timeline 1's too, which never exists: a promotion copies its new timeline's parent's history
    // file from the archive (timeline.c, writeTimeLineHistory), without the check for timeline 1
    // that its other lookups make.
    let working = true;
    const historyRecords = async () => {
      const lookedAt = new Map<string, number>();
      while (working && recovering()) {
        const timeline = timelineOf(position);
        for (const t of [timeline + 1, timeline]) {
          const name = `${t.toString(16).toUpperCase().padStart(8, '0')}.history`;
          const at = lookedAt.get(name);
          // Renewed once the archive's end is in sight, where recovery asks for them; before, a
          // call that finds its record stale asks for it (cli/pgbp's renewed_answer). Each lookup
          // is a listing and the archive's identity read from the store, every second.
          const due = at === undefined || (missing !== undefined && Date.now() - at >= HISTORY_RENEW_MS);
          if (!due && !existsSync(askedRecord(dir, name))) continue;
          lookedAt.set(name, Date.now());
          await lookUp(name).catch(() => {});
        }
        await sleep(POLL_MS);
      }
    };
    const workers = Promise.all(Array.from({ length: Math.max(1, deps.concurrency) }, worker)).finally(() => {
      working = false;
    });
    await Promise.all([workers, historyRecords()]);
    // Recovery has ended: what is left spooled will not be asked for.
    if (!recovering()) sweep(dir, () => true, STALE_MS);
    // Its last questions (the timeline's history file, once the signal file is gone) may still
    // come: the records go once they are too old to answer.
    if (recorded.size > 0) {
      await sleep(ABSENT_FRESH_S * 1000 + 1000);
      for (const name of recorded) forgetAbsent(dir, name);
    }
  } finally {
    await release();
  }
  return spooledCount;
}
