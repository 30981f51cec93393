import * as z from 'zod';
import { formatStamp } from './backup-layout.js';
import { encryptionSchema } from './manifest.js';
import { DEFAULT_SEGMENT_BYTES, formatLsn, parseLsn, segmentOfLsn } from './wal-names.js';

/**
 * Physical base backups: their manifest (ours, written last, after the WAL they need is in the
 * archive), their ids, and the choice of the base backup a recovery starts from. Pure.
 */

export const BASE_MANIFEST_VERSION = 1;

/** A base backup's id: its start time in UTC, `yyyymmddThhmmssZ` (sorts as it was taken). */
const BASE_ID = /^\d{8}T\d{6}Z$/;

export function isBaseBackupId(id: string): boolean {
  return BASE_ID.test(id);
}

export function baseBackupIdFor(at: Date): string {
  return formatStamp(at);
}

const lsn = z.string().refine((v) => parseLsn(v) !== undefined, 'an LSN such as 0/3000028');
const isoDate = z.iso.datetime({ offset: false });
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const baseManifestSchema = z
  .object({
    manifestVersion: z.literal(BASE_MANIFEST_VERSION),
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
    /** PostgreSQL's backup_manifest, kept apart as well (compressed), for pg_verifybackup. */
    backupManifest: z.object({ key: z.string().min(1), sha256, sizeBytes: z.number().int().nonnegative() }),
    /** The tablespaces in the backup: pg_default and pg_global only (others are refused). */
    tablespaces: z.array(z.string()),
    storageClass: z.string().min(1),
    encryption: encryptionSchema,
    /** When the WAL from start to stop was confirmed in the archive. */
    walConfirmedAt: isoDate,
  })
  .strict();

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

/** What backup_label says of a base backup's start. */
export interface BackupLabel {
  readonly startLsn: bigint;
  readonly startWal: string;
  readonly timeline: number;
  readonly startTime?: string;
  readonly label?: string;
}

/**
 * Parses a backup_label file:
 * `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)`, `START TIMELINE: 1`, …
 */
export function parseBackupLabel(text: string): BackupLabel | undefined {
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim();
  const location = /^([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/i.exec(
    field('START WAL LOCATION') ?? '',
  );
  const startLsn = location?.[1] ? parseLsn(location[1]) : undefined;
  const timeline = Number(field('START TIMELINE') ?? Number.NaN);
  if (startLsn === undefined || !location?.[2] || !Number.isInteger(timeline) || timeline < 1)
    return undefined;
  const startTime = field('START TIME');
  const label = field('LABEL');
  return {
    startLsn,
    startWal: location[2],
    timeline,
    ...(startTime ? { startTime } : {}),
    ...(label ? { label } : {}),
  };
}

/** The WAL ranges PostgreSQL's backup_manifest lists: where replay must start and reach. */
export interface WalRange {
  readonly timeline: number;
  readonly startLsn: bigint;
  readonly endLsn: bigint;
}

/** The `WAL-Ranges` of a backup_manifest (JSON); undefined when it has none or is not one. */
export function walRangesOf(backupManifest: string): WalRange[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(backupManifest);
  } catch {
    return undefined;
  }
  const ranges = (parsed as { 'WAL-Ranges'?: unknown })?.['WAL-Ranges'];
  if (!Array.isArray(ranges) || ranges.length === 0) return undefined;
  const out: WalRange[] = [];
  for (const r of ranges as Record<string, unknown>[]) {
    const startLsn = parseLsn(String(r['Start-LSN'] ?? ''));
    const endLsn = parseLsn(String(r['End-LSN'] ?? ''));
    const timeline = Number(r.Timeline);
    if (startLsn === undefined || endLsn === undefined || !Number.isInteger(timeline)) return undefined;
    out.push({ timeline, startLsn, endLsn });
  }
  return out;
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
