import * as z from 'zod';
import { formatStamp, parseStamp } from './backup-layout.js';
import { encryptionSchema } from './manifest.js';
import { DEFAULT_SEGMENT_BYTES, formatLsn, parseLsn, segmentOfLsn } from './wal-names.js';

/**
 * Physical base backups: their manifest (ours, written last, after the WAL they need is in the
 * archive), their ids, and the choice of the base backup a recovery starts from. Pure.
 */

/**
 * 2: PostgreSQL's backup_manifest is only inside the tar stream (pg_basebackup puts it there as
 * the last member; a recovery extracts it into the data directory, where pg_verifybackup reads
 * it). 1 also kept a compressed copy apart, `backupManifest`, which stays readable.
 */
export const BASE_MANIFEST_VERSION = 2;

/** A base backup's id: its start time in UTC, `yyyymmddThhmmssZ` (sorts as it was taken). */
const BASE_ID = /^\d{8}T\d{6}Z$/;

export function isBaseBackupId(id: string): boolean {
  return BASE_ID.test(id);
}

export function baseBackupIdFor(at: Date): string {
  return formatStamp(at);
}

/** When the base backup of an id started; undefined for an id that names no real time. */
export function baseBackupStartOf(id: string): Date | undefined {
  return isBaseBackupId(id) ? parseStamp(id) : undefined;
}

const lsn = z.string().refine((v) => parseLsn(v) !== undefined, 'an LSN such as 0/3000028');
const isoDate = z.iso.datetime({ offset: false });
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

const baseManifestFields = {
  kind: z.literal('base'),
  id: z.string().refine(isBaseBackupId, 'a base backup id yyyymmddThhmmssZ'),
  /** The archive's name in the store (config `wal.cluster`). */
  cluster: z.string().min(1),
  /** PostgreSQL's database system identifier, as a decimal string (it is a 64-bit number). */
  systemIdentifier: z.string().regex(/^\d+$/),
  timeline: z.number().int().min(1),
  startLsn: lsn,
  stopLsn: lsn,
  /** The first and last WAL segments a recovery from this backup needs before it is consistent. */
  startWal: z.string(),
  stopWal: z.string(),
  startTime: isoDate,
  stopTime: isoDate,
  durationMs: z.number().int().nonnegative(),
  serverVersion: z.string().min(1),
  serverMajor: z.number().int().min(10),
  walSegmentBytes: z.number().int().positive(),
  /** The tar stream pg_basebackup wrote (the data directory and its backup_manifest), compressed. */
  key: z.string().min(1),
  sizeBytes: z.number().int().nonnegative(),
  /** The tar stream's own size, before compression: what a recovery writes to disk. */
  originalBytes: z.number().int().nonnegative(),
  sha256,
  compression: z.object({ codec: z.literal('zstd'), level: z.number().int() }),
  /** The tablespaces in the backup: pg_default and pg_global only (others are refused). */
  tablespaces: z.array(z.string()),
  storageClass: z.string().min(1),
  encryption: encryptionSchema,
  /** When the WAL from start to stop was confirmed in the archive. */
  walConfirmedAt: isoDate,
};

export const baseManifestSchema = z.discriminatedUnion('manifestVersion', [
  z.object({ manifestVersion: z.literal(BASE_MANIFEST_VERSION), ...baseManifestFields }).strict(),
  z
    .object({
      manifestVersion: z.literal(1),
      ...baseManifestFields,
      /** PostgreSQL's backup_manifest, kept apart as well (compressed); read by nothing. */
      backupManifest: z.object({ key: z.string().min(1), sha256, sizeBytes: z.number().int().nonnegative() }),
    })
    .strict(),
]);

export type BaseManifest = z.infer<typeof baseManifestSchema>;

export function parseBaseManifest(value: unknown): BaseManifest {
  return baseManifestSchema.parse(value);
}

/** The WAL segments from `start` to `stop` (the stop position's previous byte), on one timeline. */
export function segmentsBetween(
  start: bigint,
  stop: bigint,
  timeline: number,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): string[] {
  const first = start / BigInt(segmentBytes);
  // The stop position is the first byte after the backup's end record: the segment holding the
  // byte before it is the last one needed (PostgreSQL's XLByteToPrevSeg).
  const last = (stop > start ? stop - 1n : start) / BigInt(segmentBytes);
  const names: string[] = [];
  for (let seg = first; seg <= last; seg++)
    names.push(segmentOfLsn(seg * BigInt(segmentBytes), timeline, segmentBytes));
  return names;
}

/**
 * The backup history file (`<segment>.<offset>.backup`) the server writes at the end of a base
 * backup and archives before the backup ends: where it started and stopped, on which timelines,
 * and its label.
 */
export interface BackupHistory {
  readonly startLsn: bigint;
  readonly startWal: string;
  readonly stopLsn: bigint;
  readonly stopWal: string;
  readonly timeline: number;
  readonly stopTimeline: number;
  readonly label: string;
}

/** The backup history file's name: the start segment and the start's offset in it (BackupHistoryFileName). */
export function backupHistoryFileName(
  startLsn: bigint,
  timeline: number,
  segmentBytes: number = DEFAULT_SEGMENT_BYTES,
): string {
  const offset = Number(startLsn % BigInt(segmentBytes));
  return `${segmentOfLsn(startLsn, timeline, segmentBytes)}.${offset.toString(16).toUpperCase().padStart(8, '0')}.backup`;
}

/**
 * Parses a backup history file:
 * `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)`, `STOP WAL LOCATION: …`,
 * `LABEL: …`, `START TIMELINE: 1`, `STOP TIMELINE: 1`; undefined when a field is missing.
 */
export function parseBackupHistory(text: string): BackupHistory | undefined {
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim();
  const location = (name: string) => {
    const m = /^([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/i.exec(field(name) ?? '');
    const at = m?.[1] ? parseLsn(m[1]) : undefined;
    return at !== undefined && m?.[2] ? { lsn: at, wal: m[2] } : undefined;
  };
  const timeline = (name: string) => {
    const n = Number(field(name) ?? Number.NaN);
    return Number.isInteger(n) && n >= 1 ? n : undefined;
  };
  const start = location('START WAL LOCATION');
  const stop = location('STOP WAL LOCATION');
  const startTimeline = timeline('START TIMELINE');
  const stopTimeline = timeline('STOP TIMELINE');
  const label = field('LABEL');
  if (!start || !stop || !startTimeline || !stopTimeline || label === undefined) return undefined;
  return {
    startLsn: start.lsn,
    startWal: start.wal,
    stopLsn: stop.lsn,
    stopWal: stop.wal,
    timeline: startTimeline,
    stopTimeline,
    label,
  };
}

/** The label a base backup of this project gives the server, which its backup history file carries. */
export function baseBackupLabel(id: string): string {
  return `pgbp base backup ${id}`;
}

/**
 * The sizes in zstd's summary at `-vv` (`/*stdin*\ :12.40%   (1073741824 B => 133143986 B, …)`;
 * zstd before 1.5 wrote `(1073741824 => 133143986 bytes, …)`): what it read and what it wrote.
 */
export function zstdSummarySizes(
  line: string,
): { readonly read: number; readonly written: number } | undefined {
  const m = /\(\s*(\d+) B => \s*(\d+) B,/.exec(line) ?? /\(\s*(\d+) => \s*(\d+) bytes,/.exec(line);
  if (!m?.[1] || !m[2]) return undefined;
  return { read: Number(m[1]), written: Number(m[2]) };
}

/** What a recovery aims at. */
export type RecoveryTarget =
  | { readonly kind: 'time'; readonly time: Date }
  | { readonly kind: 'xid'; readonly xid: string }
  | { readonly kind: 'lsn'; readonly lsn: bigint }
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'latest' };

export function describeTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'time':
      return `time ${target.time.toISOString()}`;
    case 'xid':
      return `transaction ${target.xid}`;
    case 'lsn':
      return `LSN ${formatLsn(target.lsn)}`;
    case 'name':
      return `restore point ${JSON.stringify(target.name)}`;
    case 'latest':
      return 'the latest archived state';
  }
}

/** The PostgreSQL 12+ recovery settings of a target (recovery.conf is gone since 12). */
export function targetSettings(target: RecoveryTarget): Record<string, string> {
  switch (target.kind) {
    case 'time':
      // PostgreSQL reads timestamptz input: a space, not ISO's T; +00 for UTC.
      return { recovery_target_time: target.time.toISOString().replace('T', ' ').replace('Z', '+00') };
    case 'xid':
      return { recovery_target_xid: target.xid };
    case 'lsn':
      return { recovery_target_lsn: formatLsn(target.lsn) };
    case 'name':
      return { recovery_target_name: target.name };
    case 'latest':
      return {};
  }
}

export type BaseChoice =
  | { readonly ok: true; readonly base: BaseManifest }
  | { readonly ok: false; readonly reason: string };

/**
 * The base backup a recovery to `target` starts from: the newest whose end lies before the
 * target (a time or an LSN), or the newest of all for targets whose position is only known by
 * replaying (a transaction, a restore point, the latest state). Only base backups of one system
 * are given.
 */
export function chooseBaseBackup(bases: readonly BaseManifest[], target: RecoveryTarget): BaseChoice {
  const sorted = [...bases].sort((a, b) => (a.stopTime < b.stopTime ? 1 : a.stopTime > b.stopTime ? -1 : 0));
  if (sorted.length === 0) return { ok: false, reason: 'there is no base backup in the archive' };
  const fits = (b: BaseManifest) => {
    if (target.kind === 'time') return Date.parse(b.stopTime) <= target.time.getTime();
    if (target.kind === 'lsn') return (parseLsn(b.stopLsn) ?? 0n) <= target.lsn;
    return true;
  };
  const base = sorted.find(fits);
  if (base) return { ok: true, base };
  const oldest = sorted.at(-1) as BaseManifest;
  const reach = target.kind === 'lsn' ? `LSN ${oldest.stopLsn}` : oldest.stopTime;
  return {
    ok: false,
    reason: `${describeTarget(target)} is before the oldest base backup ${oldest.id}, which is consistent from ${reach}: nothing can recover to an earlier point`,
  };
}
