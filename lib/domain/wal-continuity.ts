import { describeTarget, type RecoveryTarget } from './base-backup.js';
import {
  DEFAULT_SEGMENT_BYTES,
  formatLsn,
  historyFileName,
  parseLsn,
  segmentName,
  segmentNumber,
} from './wal-names.js';

/**
 * Whether the WAL archive holds everything a recovery needs, decided before anything is written:
 * the segments from the base backup's start, on the timelines that `recovery_target_timeline =
 * 'latest'` follows, up to the target. Pure: the caller lists the archive.
 */

/** One line of a timeline history file: `<parent timeline>\t<switch LSN>\t<reason>`. */
export interface TimelineSwitch {
  readonly timeline: number;
  /** Where this timeline ended: the next one branched off here. */
  readonly endLsn: bigint;
}

/** Parses a `TTTTTTTT.history` file; comment and blank lines are skipped. */
export function parseTimelineHistory(text: string): TimelineSwitch[] {
  const out: TimelineSwitch[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [tli, lsn] = line.split(/\s+/);
    const endLsn = parseLsn(lsn ?? '');
    const timeline = Number(tli);
    if (endLsn === undefined || !Number.isInteger(timeline) || timeline < 1) {
      throw new RangeError(`not a timeline history line: ${JSON.stringify(line)}`);
    }
    out.push({ timeline, endLsn });
  }
  return out;
}

/** A timeline of the path a recovery follows, from where it began to where it ended (open for the last). */
export interface TimelineSpan {
  readonly timeline: number;
  readonly beginLsn: bigint;
  readonly endLsn?: bigint;
}

export interface ArchivedSegment {
  readonly name: string;
  /** When it was stored: the archive's own clock, after the last record it holds was written. */
  readonly archivedAt: Date;
}

export interface ContinuityInput {
  readonly base: {
    readonly id: string;
    readonly timeline: number;
    readonly startLsn: bigint;
    readonly stopLsn: bigint;
  };
  readonly target: RecoveryTarget;
  /** The WAL segments in the archive (full segments only: `.partial` files are never replayed). */
  readonly segments: readonly ArchivedSegment[];
  /** The history files in the archive, by timeline. */
  readonly histories: ReadonlyMap<number, string>;
  readonly segmentBytes?: number;
}

export interface Reachable {
  /** The last segment of the unbroken run from the base backup's start. */
  readonly segment: string;
  /** The end of that segment: replay can reach no further. */
  readonly lsn: string;
  readonly archivedAt: string;
}

export type Continuity =
  | {
      readonly ok: true;
      readonly timelines: readonly TimelineSpan[];
      /** The newest timeline, which recovery ends on before it promotes. */
      readonly targetTimeline: number;
      /** Segments from the base backup's start to the furthest reachable point. */
      readonly segmentCount: number;
      readonly reachable: Reachable;
    }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly missing?: string;
      readonly reachable?: Reachable;
    };

/**
 * The newest timeline PostgreSQL's `recovery_target_timeline = 'latest'` picks: history files
 * are probed upward from the base backup's timeline while they exist (findNewestTimeLine).
 */
export function newestTimeline(from: number, histories: ReadonlyMap<number, string>): number {
  let newest = from;
  while (histories.has(newest + 1)) newest += 1;
  return newest;
}

/** The spans of the timelines that lead to `timeline`, from its history file. */
export function timelinePath(timeline: number, histories: ReadonlyMap<number, string>): TimelineSpan[] {
  if (timeline === 1 || !histories.has(timeline)) return [{ timeline, beginLsn: 0n }];
  const switches = parseTimelineHistory(histories.get(timeline) ?? '');
  const spans: TimelineSpan[] = [];
  let begin = 0n;
  for (const s of switches) {
    spans.push({ timeline: s.timeline, beginLsn: begin, endLsn: s.endLsn });
    begin = s.endLsn;
  }
  spans.push({ timeline, beginLsn: begin });
  return spans;
}

/** Checks that the archive is continuous from the base backup to the target. */
export function checkContinuity(input: ContinuityInput): Continuity {
  const bytes = BigInt(input.segmentBytes ?? DEFAULT_SEGMENT_BYTES);
  const segBytes = Number(bytes);
  const { base, target } = input;
  const targetTimeline = newestTimeline(base.timeline, input.histories);
  const path = timelinePath(targetTimeline, input.histories);
  const baseSpan = path.find((s) => s.timeline === base.timeline);
  if (!baseSpan) {
    return {
      ok: false,
      reason: `timeline ${targetTimeline} (${historyFileName(targetTimeline)}) does not descend from timeline ${base.timeline} of base backup ${base.id}`,
    };
  }
  if (baseSpan.endLsn !== undefined && base.stopLsn > baseSpan.endLsn) {
    return {
      ok: false,
      reason: `base backup ${base.id} ends at ${formatLsn(base.stopLsn)} on timeline ${base.timeline}, after timeline ${targetTimeline} branched off at ${formatLsn(baseSpan.endLsn)}: use an older base backup`,
    };
  }
  const spans = path.filter((s) => s.timeline >= base.timeline);
  const byName = new Map(input.segments.map((s) => [s.name, s] as const));
  const segOf = (lsn: bigint) => Number(lsn / bytes);
  /** The files that can hold segment `n`: newest timeline first, as PostgreSQL tries them. */
  const candidates = (n: number) =>
    spans
      .filter((s) => segOf(s.beginLsn) <= n && (s.endLsn === undefined || segOf(s.endLsn) >= n))
      .reverse()
      .map((s) => segmentName(s.timeline, n, segBytes));

  const first = segOf(base.startLsn);
  const onPath = input.segments
    .map((s) => segmentNumber(s.name, segBytes))
    .filter((n, i) => n >= first && candidates(n).includes(input.segments[i]?.name ?? ''));
  const lastArchived = onPath.length > 0 ? Math.max(...onPath) : first - 1;

  let n = first;
  let last: ArchivedSegment | undefined;
  for (;;) {
    const found = candidates(n)
      .map((name) => byName.get(name))
      .find((s) => s !== undefined);
    if (!found) break;
    last = found;
    n += 1;
  }
  const missing = candidates(n)[0] ?? segmentName(targetTimeline, n, segBytes);
  const reachable: Reachable | undefined = last
    ? { segment: last.name, lsn: formatLsn(BigInt(n) * bytes), archivedAt: last.archivedAt.toISOString() }
    : undefined;
  const where = reachable
    ? `the furthest point reachable is ${reachable.lsn} (end of ${reachable.segment}, archived ${reachable.archivedAt})`
    : `nothing from base backup ${base.id} onwards is reachable`;
  const gap = (why: string) => ({
    ok: false as const,
    reason: `${why}; ${where}`,
    missing,
    ...(reachable ? { reachable } : {}),
  });

  const stopSegment = segOf(base.stopLsn > base.startLsn ? base.stopLsn - 1n : base.startLsn);
  if (n <= stopSegment) {
    return gap(
      `WAL segment ${missing} is missing from the archive: base backup ${base.id} needs it to become consistent`,
    );
  }
  const laterExists = lastArchived >= n;
  switch (target.kind) {
    case 'lsn':
      if (n <= segOf(target.lsn)) {
        return gap(
          `WAL segment ${missing} is missing from the archive: ${describeTarget(target)} lies beyond it`,
        );
      }
      break;
    case 'time':
      if (last && last.archivedAt.getTime() < target.time.getTime()) {
        return gap(
          laterExists
            ? `WAL segment ${missing} is missing from the archive, before ${describeTarget(target)}`
            : `the archive ends before ${describeTarget(target)}: its newest WAL segment ${last.name} was archived ${last.archivedAt.toISOString()}`,
        );
      }
      break;
    default:
      // A transaction, a restore point or the latest state: found only by replaying, so the
      // whole archive must be reachable.
      if (laterExists) {
        return gap(
          `WAL segment ${missing} is missing from the archive, and later segments exist: ${describeTarget(target)} may lie beyond the gap`,
        );
      }
  }
  return {
    ok: true,
    timelines: spans,
    targetTimeline,
    segmentCount: n - first,
    reachable: reachable as Reachable,
  };
}
