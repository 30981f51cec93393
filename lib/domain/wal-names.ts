/**
 * The names PostgreSQL gives the files of its write-ahead log, and log sequence numbers (LSNs).
 * Pure: used by the WAL archive (push, fetch, retention, continuity) and by base backups and
 * recovery, which speak of where a backup starts and stops.
 */

/**
 * restore_command's status for a file that exists but cannot be handed over (damaged, or the
 * store unreadable after retries), and for any failure of pgbp itself: PostgreSQL aborts
 * recovery on a status above 125 instead of taking it for the end of the archive and promoting.
 */
export const FETCH_ABORT = 126;
/** restore_command's status for a file the archive does not hold. */
export const FETCH_MISSING = 1;

/** The default WAL segment size (initdb --wal-segsize), in bytes. */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

/** What kind of file of pg_wal a name denotes. */
export type WalFileKind = 'segment' | 'partial' | 'backup' | 'history';

export interface WalFileName {
  readonly name: string;
  readonly kind: WalFileKind;
  readonly timeline: number;
  /** The segment's 16 hex digits after the timeline (log and segment); absent for history files. */
  readonly segment?: string;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{16})$/;
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{16})\.partial$/;
const BACKUP = /^([0-9A-F]{8})([0-9A-F]{16})\.[0-9A-F]{8}\.backup$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;

/** Parses a name PostgreSQL hands archive_command or restore_command; undefined for anything else. */
export function parseWalFileName(name: string): WalFileName | undefined {
  for (const [kind, re] of [
    ['segment', SEGMENT],
    ['partial', PARTIAL],
    ['backup', BACKUP],
    ['history', HISTORY],
  ] as const) {
    const m = re.exec(name);
    if (!m) continue;
    const timeline = Number.parseInt(m[1] ?? '', 16);
    if (timeline === 0) return undefined;
    return { name, kind, timeline, ...(m[2] ? { segment: m[2] } : {}) };
  }
  return undefined;
}

/** How many segments one 4 GiB "log" holds: the low 8 hex digits count up to this. */
export function segmentsPerLog(segmentBytes: number = DEFAULT_SEGMENT_BYTES): number {
  return 0x1_0000_0000 / segmentBytes;
}

/** The position of a segment in the log, counting from 0 (PostgreSQL's XLogSegNo). */
export function segmentNumber(name: string, segmentBytes: number = DEFAULT_SEGMENT_BYTES): number {
  const m = SEGMENT.exec(name.slice(0, 24));
  if (!m) throw new RangeError(`${JSON.stringify(name)} is not a WAL segment name`);
  const log = Number.parseInt(name.slice(8, 16), 16);
  const seg = Number.parseInt(name.slice(16, 24), 16);
  return log * segmentsPerLog(segmentBytes) + seg;
}

/** The file name of segment `segNo` on `timeline` (PostgreSQL's XLogFileName). */
export function segmentName(
  timeline: number,
  segNo: number,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): string {
  const perLog = segmentsPerLog(segmentBytes);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(Math.floor(segNo / perLog))}${hex(segNo % perLog)}`;
}

/** The segment after `name` on the same timeline. */
export function nextSegmentName(name: string, segmentBytes: number = DEFAULT_SEGMENT_BYTES): string {
  return segmentName(timelineOf(name), segmentNumber(name, segmentBytes) + 1, segmentBytes);
}

/** The timeline in the first 8 hex digits of a segment, partial, backup or history file name. */
export function timelineOf(name: string): number {
  return Number.parseInt(name.slice(0, 8), 16);
}

/** The history file name of a timeline, e.g. 00000002.history. */
export function historyFileName(timeline: number): string {
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

/** An LSN as PostgreSQL prints it ("16/B374D848"), as a bigint byte position. */
export function parseLsn(text: string): bigint | undefined {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) return undefined;
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** An LSN as PostgreSQL prints it. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** The segment holding the byte at `lsn` (PostgreSQL's XLByteToSeg). */
export function segmentOfLsn(
  lsn: bigint,
  timeline: number,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): string {
  return segmentName(timeline, Number(lsn / BigInt(segmentBytes)), segmentBytes);
}
