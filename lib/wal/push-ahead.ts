import { existsSync, type FSWatcher, readdirSync, watch, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseWalFileName } from '../domain/wal-names.js';
import { IdentifiedWalArchive } from './archive.js';
import { type PushDeps, type PushOutcome, pushWal, type RoleArchive } from './push.js';
import { isEncoderDebris, SegmentEncoder } from './segment-encoder.js';
import {
  entryName,
  inflightMarker,
  lockHolderAlive,
  pushedDir,
  removeFile,
  spooled,
  sweep,
  takePushRecord,
  tryLock,
} from './spool.js';

/** Records older than this are of an earlier life of the data directory. */
const STALE_MS = 24 * 3_600_000;
/** How long a call waits for the segment the pusher is storing right now. */
const INFLIGHT_WAIT_MS = 10_000;
/** How often the pusher looks for segments PostgreSQL has marked ready, besides when told (inotify). */
const POLL_MS = 250;
/** A pusher that finds nothing ready for this long exits; the next burst's first call starts another. */
const IDLE_MS = 5_000;
/**
 * The pusher's niceness: its zstd and cksum inherit it. It works beside the server in the middle
 * of a burst, and what the server's own backends need comes first; the segment PostgreSQL waits
 * for is pushed by its own call at the server's priority when the pusher cannot take it.
 */
const PUSHER_NICENESS = 10;

function signal(): { readonly promise: Promise<void>; readonly fire: () => void } {
  let fire = () => {};
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

/** Calls `changed` on any change in `dir`; undefined where it cannot be watched (the poll then). */
function watchFolder(dir: string, changed: () => void): FSWatcher | undefined {
  try {
    const watcher = watch(dir, { persistent: false }, changed);
    watcher.on('error', () => watcher.close());
    return watcher;
  } catch {
    return undefined;
  }
}

/** The lock the one pusher of an archive's records holds (its pid). */
export function pusherLock(records: string): string {
  return join(records, '.pusher');
}

/** The marker of a segment that PostgreSQL's own call is pushing (the pusher leaves it alone). */
function ownMarker(records: string, name: string): string {
  return join(records, `.${name}.own`);
}

export interface AheadSettings {
  /** How many segments the pusher stores at once (0: no pusher, each call pushes its own). */
  readonly ahead: number;
  /** Which archive's records (see archiveTag in spool.ts). */
  readonly tag: string;
}

/**
 * archive_command for bursts (pgBackRest's asynchronous archive-push): a call that finds other
 * segments ready (`pg_wal/archive_status/*.ready`) starts the pusher, a process of its own
 * (through `startPusher`), which stores them in order, `ahead` at a time, and records each once
 * it is durably stored in every store; PostgreSQL's own call for a recorded segment is then
 * answered from the record when the file still has the recorded CRC (the launcher, cli/pgbp,
 * before Node starts), and a call for the segment the pusher is storing right now waits for it.
 * A call that finds neither pushes its file itself, with every check and every message. A call
 * returns 0 only for its own file durably stored, now or before.
 */
export async function pushWithAhead(
  path: string,
  deps: PushDeps & AheadSettings & { readonly startPusher: (after: string) => number | undefined },
): Promise<PushOutcome & { readonly fromRecord: boolean }> {
  const file = parseWalFileName(basename(path));
  if (file?.kind !== 'segment' || deps.ahead === 0)
    return { ...(await pushWal(path, deps)), fromRecord: false };
  const records = pushedDir(deps.dataDir, deps.tag);
  const marker = inflightMarker(records, file.name);
  if (existsSync(marker) && (await lockHolderAlive(pusherLock(records)))) {
    const deadline = Date.now() + INFLIGHT_WAIT_MS;
    while (existsSync(marker) && !spooled(records).has(file.name) && Date.now() < deadline) {
      await sleep(5);
    }
  }
  const recorded = await takePushRecord(records, file.name, path);
  if (recorded) {
    return {
      name: file.name,
      status: 'already-stored',
      key: (deps.archives[0] as RoleArchive).archive.keyOf(file, recorded.sha256),
      ...recorded,
      fromRecord: true,
    };
  }
  sweep(records, (n) => n < file.name, STALE_MS);
  const pgWal = dirname(path);
  if (readySegments(pgWal).some((n) => n > file.name) && !(await lockHolderAlive(pusherLock(records)))) {
    const pid = deps.startPusher(file.name);
    // Its lock at once, in its name: PostgreSQL's next call, which comes as soon as this one
    // ends, waits for the pusher instead of pushing beside it while it starts.
    if (pid) {
      await mkdir(records, { recursive: true, mode: 0o700 }).catch(() => {});
      await writeFile(pusherLock(records), String(pid), { flag: 'wx', mode: 0o600 }).catch(() => {});
    }
  }
  // Marked as this call's, so that the pusher leaves it alone.
  await mkdir(records, { recursive: true, mode: 0o700 }).catch(() => {});
  const mine = ownMarker(records, file.name);
  const own = await writeFile(mine, '', { mode: 0o600 }).then(
    () => true,
    () => false,
  );
  try {
    return { ...(await pushWal(path, deps)), fromRecord: false };
  } finally {
    if (own) await unlink(mine).catch(() => {});
  }
}

/** The segments of pg_wal that PostgreSQL has marked ready to archive, in order. */
function readySegments(pgWal: string): string[] {
  let names: string[];
  try {
    // Blocking, as the spool's listings: once per segment the pusher picks (a listing of 40
    // names cost 91 us of CPU through libuv's threads here, 49 us blocking).
    names = readdirSync(join(pgWal, 'archive_status'));
  } catch {
    names = [];
  }
  return names
    .filter((n) => n.endsWith('.ready'))
    .map((n) => n.slice(0, -'.ready'.length))
    .filter((n) => parseWalFileName(n)?.kind === 'segment')
    .sort();
}

/**
 * The pusher (`pgbp wal-push-ahead AFTER`): stores the ready segments after `after`, lowest
 * first, `ahead` at a time, at a lower priority than the server's, each under an in-flight
 * marker while it is stored, then recorded (`<name>-<sha256>-<crc>-<size>`, see spool.ts) once
 * it is durably stored in every configured store. A segment it could not store everywhere
 * (a store failed, a conflict, another cluster's WAL) gets no record: PostgreSQL's own call
 * pushes it, and says and alerts what is wrong. One runs at a time per archive; it exits once
 * nothing has been ready for a while, or the server has stopped. Returns how many it stored.
 */
export async function pushAhead(after: string, deps: PushDeps & AheadSettings): Promise<number> {
  const records = pushedDir(deps.dataDir, deps.tag);
  await mkdir(records, { recursive: true, mode: 0o700 });
  const lock = pusherLock(records);
  // The call that started this one may have taken the lock in its name already.
  const mine = async () => Number(await readFile(lock, 'utf8').catch(() => '')) === process.pid;
  const release =
    (await tryLock(lock)) ??
    ((await mine()) ? async () => void (await unlink(lock).catch(() => {})) : undefined);
  if (!release) return 0;
  try {
    setPriority(PUSHER_NICENESS);
  } catch {
    // Not allowed here: it runs at the server's priority.
  }
  const pgWal = join(deps.dataDir, 'pg_wal');
  // Each store's archive.json read once for the burst, not for every segment.
  const archives = deps.archives.map(({ role, archive }) => ({
    role,
    archive: new IdentifiedWalArchive(archive.store, archive.cluster),
  }));
  let stored = 0;
  try {
    // Markers and copies an earlier pusher left when it died.
    for (const n of await readdir(records)) {
      if (n.endsWith('.inflight') || isEncoderDebris(n)) await unlink(join(records, n)).catch(() => {});
    }
    const inflight = new Set<string>();
    const refused = new Set<string>();
    // Recorded once: its record is used up before PostgreSQL marks it done.
    const recorded = new Set<string>();
    let busyAt = Date.now();
    // Woken when PostgreSQL marks a segment ready (inotify), and on a slow poll besides.
    let wake = signal();
    const watcher = watchFolder(join(pgWal, 'archive_status'), () => {
      const current = wake;
      wake = signal();
      current.fire();
    });
    const running = () => existsSync(join(deps.dataDir, 'postmaster.pid'));
    const pick = async (): Promise<string | undefined> => {
      const have = spooled(records);
      for (const name of readySegments(pgWal)) {
        if (name <= after || have.has(name) || inflight.has(name) || refused.has(name) || recorded.has(name))
          continue;
        // A call of PostgreSQL's own is pushing it.
        if (existsSync(ownMarker(records, name))) continue;
        // Taken before any other worker looks again (nothing is awaited since the listing).
        inflight.add(name);
        return name;
      }
      return undefined;
    };
    const worker = async () => {
      const encoder = new SegmentEncoder(deps.env, records);
      try {
        await work(encoder);
      } finally {
        await encoder.close();
      }
    };
    const work = async (encoder: SegmentEncoder) => {
      while (running()) {
        const name = await pick();
        if (!name) {
          // Its copy emptied before it waits, never written out to disk (see SegmentEncoder.emptyCopy).
          encoder.emptyCopy();
          if (Date.now() - busyAt > IDLE_MS) return;
          await Promise.race([wake.promise, sleep(POLL_MS)]);
          continue;
        }
        busyAt = Date.now();
        const marker = inflightMarker(records, name);
        try {
          // The marker and the record by blocking writes, as the spool's other small calls
          // (spool.ts): a write and a removal through libuv's threads cost 169 us of CPU here,
          // 25 us blocking (medians of 7 rounds of 200).
          writeFileSync(marker, '', { mode: 0o600 });
          const outcome = await pushWal(join(pgWal, name), { ...deps, archives }, { check: true, encoder });
          if (outcome.degraded) refused.add(name);
          else {
            writeFileSync(join(records, entryName(name, outcome.sha256, outcome.check)), '', {
              mode: 0o600,
            });
            recorded.add(name);
            stored++;
          }
        } catch {
          refused.add(name);
        } finally {
          inflight.delete(name);
          // After the record: a call that sees the marker gone finds the record, if there is one.
          removeFile(marker);
          busyAt = Date.now();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, deps.ahead) }, worker));
    } finally {
      watcher?.close();
    }
  } finally {
    await release();
  }
  return stored;
}
