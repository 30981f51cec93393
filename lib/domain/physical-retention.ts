/**
 * Retention of the physical archive: base backups and the WAL a recovery replays. Pure: the
 * caller lists the archive, this decides, the caller deletes. Whatever the input:
 * - with no base backup, nothing is removed (the WAL may be all a hand-made backup has);
 * - the newest base backup is kept, every one that ended within the PITR window, and the newest
 *   that ended before it, so any second of the window has a base backup to start from;
 * - every WAL file archived within the WAL window is kept, and every segment a kept base backup
 *   needs (from its start segment on, on its timeline and every later one descending from it:
 *   any later one whose history file is missing);
 * - on each timeline only the oldest segments go: what is kept is a suffix of what was there,
 *   so retention never opens a gap inside what it keeps;
 * - a history file is kept while its timeline is in use (a kept segment or base backup is on it
 *   or on a timeline descending from it) or it was archived within the window.
 */
import { parseTimelineHistory } from './wal-continuity.js';
import { DEFAULT_SEGMENT_BYTES, parseWalFileName, segmentName, segmentNumber } from './wal-names.js';

/** A base backup as retention sees it (its manifest holds more). */
export interface RetainableBase {
  readonly id: string;
  readonly timeline: number;
  /** The first WAL segment a recovery from it replays. */
  readonly startWal: string;
  readonly stopTime: string;
}

/** One archived WAL file: a segment, a `.partial` or `.backup` file, or a timeline history file. */
export interface ArchivedWalFile {
  readonly name: string;
  readonly key: string;
  readonly archivedAt: Date;
}

export interface PhysicalRetentionInput<B extends RetainableBase> {
  readonly now: Date;
  /** How long archived WAL is kept (config `wal.retention`). */
  readonly walWindowMs: number;
  /** Any second of this window must stay recoverable (config `pitr.window`). */
  readonly pitrWindowMs: number;
  readonly bases: readonly B[];
  readonly files: readonly ArchivedWalFile[];
  /** The history files' contents by timeline: which timelines each one descends from. */
  readonly histories?: ReadonlyMap<number, string>;
  readonly segmentBytes?: number;
}

export interface PhysicalRetentionPlan<B extends RetainableBase> {
  /** Why nothing is removed, when nothing may be. */
  readonly blocked?: string;
  /** Base backups kept and removed, newest first. */
  readonly keepBases: readonly B[];
  readonly removeBases: readonly B[];
  readonly keepFiles: readonly ArchivedWalFile[];
  readonly removeFiles: readonly ArchivedWalFile[];
  /** Per timeline, the oldest segment kept: everything older on it goes. */
  readonly keepFrom: ReadonlyMap<number, string>;
}

/**
 * The base backups kept: every one that ended within the window, the newest that ended before
 * it (the window's first second is recovered from it), and never fewer than `minKeep` (the
 * newest ones), so the last good base backup is never removed.
 */
export function planBaseBackups<B extends Pick<RetainableBase, 'stopTime'>>(
  bases: readonly B[],
  now: Date,
  windowMs: number,
  minKeep = 1,
): { readonly keep: B[]; readonly remove: B[] } {
  const sorted = [...bases].sort((a, b) => (a.stopTime < b.stopTime ? 1 : a.stopTime > b.stopTime ? -1 : 0));
  const from = now.getTime() - windowMs;
  const keep = new Set<B>();
  let anchored = false;
  for (const [i, b] of sorted.entries()) {
    const inside = Date.parse(b.stopTime) >= from;
    if (inside || i < minKeep || !anchored) keep.add(b);
    if (!inside) anchored = true;
  }
  return { keep: sorted.filter((b) => keep.has(b)), remove: sorted.filter((b) => !keep.has(b)) };
}

/** The segment number and timeline of a segment, `.partial` or `.backup` file; undefined for history files. */
function position(name: string, segmentBytes: number): { timeline: number; n: number } | undefined {
  const file = parseWalFileName(name);
  if (!file || file.kind === 'history') return undefined;
  return { timeline: file.timeline, n: segmentNumber(name.slice(0, 24), segmentBytes) };
}

/** The plan for one cluster's archive. */
export function planPhysicalRetention<B extends RetainableBase>(
  input: PhysicalRetentionInput<B>,
): PhysicalRetentionPlan<B> {
  const segmentBytes = input.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  const newestFirst = [...input.bases].sort((a, b) =>
    a.stopTime < b.stopTime ? 1 : a.stopTime > b.stopTime ? -1 : 0,
  );
  if (newestFirst.length === 0) {
    return {
      blocked: 'there is no base backup: the archived WAL is kept until one exists',
      keepBases: [],
      removeBases: [],
      keepFiles: [...input.files],
      removeFiles: [],
      keepFrom: new Map(),
    };
  }
  const { keep: keepBases, remove: removeBases } = planBaseBackups(
    newestFirst,
    input.now,
    input.pitrWindowMs,
  );

  const cutoff = input.now.getTime() - input.walWindowMs;
  const from = new Map<number, number>();
  const lower = (timeline: number, n: number) => {
    const current = from.get(timeline);
    if (current === undefined || n < current) from.set(timeline, n);
  };
  const timelines = new Set<number>();
  for (const f of input.files) {
    const p = position(f.name, segmentBytes);
    if (!p) continue;
    timelines.add(p.timeline);
    if (f.archivedAt.getTime() >= cutoff) lower(p.timeline, p.n);
  }
  const ancestors = new Map<number, Set<number> | undefined>();
  const ancestorsOf = (tl: number) => {
    if (!ancestors.has(tl)) {
      const text = input.histories?.get(tl);
      let found: Set<number> | undefined;
      try {
        found = text ? new Set(parseTimelineHistory(text).map((s) => s.timeline)) : undefined;
      } catch {
        found = undefined;
      }
      ancestors.set(tl, found);
    }
    return ancestors.get(tl);
  };
  /** Whether recovery from a backup on `from` may follow `tl`; without its history file, any later one may. */
  const follows = (tl: number, from: number) => {
    if (tl === from) return true;
    if (tl < from) return false;
    const known = ancestorsOf(tl);
    return known ? known.has(from) : true;
  };
  for (const b of keepBases) {
    const start = segmentNumber(b.startWal, segmentBytes);
    for (const tl of timelines) if (follows(tl, b.timeline)) lower(tl, start);
  }

  // Timelines in use: those of kept segments and base backups, and every one they descend from.
  const used = new Set<number>(keepBases.map((b) => b.timeline));
  for (const f of input.files) {
    const p = position(f.name, segmentBytes);
    const first = p ? from.get(p.timeline) : undefined;
    if (p && first !== undefined && p.n >= first) used.add(p.timeline);
  }
  for (const tl of [...used]) {
    if (!input.histories?.has(tl)) continue;
    const known = ancestorsOf(tl);
    // An unreadable history file: keep every older timeline's history, to be safe.
    if (known) for (const t of known) used.add(t);
    else for (let t = 1; t < tl; t += 1) used.add(t);
  }

  const keepFiles: ArchivedWalFile[] = [];
  const removeFiles: ArchivedWalFile[] = [];
  for (const f of input.files) {
    const file = parseWalFileName(f.name);
    let kept = true;
    if (file?.kind === 'history') kept = used.has(file.timeline) || f.archivedAt.getTime() >= cutoff;
    else if (file) {
      const p = position(f.name, segmentBytes) as { timeline: number; n: number };
      const first = from.get(p.timeline);
      kept = first !== undefined && p.n >= first;
    }
    (kept ? keepFiles : removeFiles).push(f);
  }
  const keepFrom = new Map<number, string>();
  for (const [tl, n] of [...from.entries()].sort((a, b) => a[0] - b[0]))
    keepFrom.set(tl, segmentName(tl, n, segmentBytes));
  return { keepBases, removeBases, keepFiles, removeFiles, keepFrom };
}
