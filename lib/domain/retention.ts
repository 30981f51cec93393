/**
 * Grandfather-father-son retention with safety invariants. Pure: the caller reads the store,
 * this decides, the caller deletes. Whatever the input:
 * - the newest good backup is kept, and at least `minKeep` good backups (or all, when fewer);
 * - when the newest good backup is older than `staleAfter` (or there is none), nothing is removed;
 * - a backup or debris object under S3 Object Lock is kept and reported ({@link holdLocked});
 * - debris (a dump with no manifest) is removed only once older than `debrisGrace`.
 */
import type { Tier } from './backup-layout.js';

/** The counts of the guide: 7 daily, 12 monthly, 7 yearly; `minKeep` good backups at least. */
export interface RetentionRules {
  readonly daily: number;
  readonly monthly: number;
  readonly yearly: number;
  readonly minKeep: number;
  /** Milliseconds a dump without a manifest is left alone: its writer may still be finishing. */
  readonly debrisGrace: number;
}

/** A good backup as retention sees it: a complete manifest and a dump of the recorded size. */
export interface RetainableBackup {
  readonly id: string;
  readonly createdAt: Date;
  readonly tier: Tier;
}

export interface DebrisObject {
  readonly key: string;
  readonly lastModified: Date;
}

export type KeepReason =
  | 'newest'
  | 'daily'
  | 'monthly'
  | 'yearly'
  | 'min-keep'
  | 'stale-block'
  | 'object-lock';

export interface KeptBackup<B extends RetainableBackup> {
  readonly backup: B;
  readonly reasons: readonly KeepReason[];
}

export type DebrisKeepReason = 'grace' | 'stale-block' | 'object-lock';

export interface RetentionPlan<B extends RetainableBackup> {
  readonly now: Date;
  /** Why nothing is removed, when the staleness guard holds everything. */
  readonly blocked?: string;
  /** Every backup kept, newest first, each with at least one reason. */
  readonly keep: readonly KeptBackup<B>[];
  /** Backups to delete, newest first. */
  readonly remove: readonly B[];
  readonly debris: {
    readonly remove: readonly DebrisObject[];
    readonly keep: readonly { readonly object: DebrisObject; readonly reason: DebrisKeepReason }[];
  };
}

export interface RetentionInput<B extends RetainableBackup> {
  readonly now: Date;
  readonly rules: RetentionRules;
  /** Milliseconds after which the newest good backup is stale and retention holds everything. */
  readonly staleAfter: number;
  readonly backups: readonly B[];
  readonly debris?: readonly DebrisObject[];
}

const DAY_MS = 86_400_000;

/**
 * `year * 12 + month` (month 0–11) of a UTC instant, by integer arithmetic (H. Hinnant's
 * days-to-civil): Date's getters cost too much across 100,000 backups.
 */
export function monthIndex(ms: number): number {
  const z = Math.floor(ms / DAY_MS) + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 2 : mp - 10;
  const year = yoe + era * 400 + (month <= 1 ? 1 : 0);
  return year * 12 + month;
}

function hours(ms: number): string {
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/**
 * The GFS plan. Backups are ranked newest first; a backup is kept when it is
 * - the newest (`newest`);
 * - the newest backup of one of the `daily` most recent UTC days that have a backup (`daily`);
 * - the earliest backup of one of the `monthly` most recent UTC months that have one (`monthly`),
 *   which is the 1st-of-month backup (tier monthly, archived by lifecycle) whenever that ran;
 * - the earliest backup of one of the `yearly` most recent UTC years that have one (`yearly`);
 * - needed to reach `minKeep`, taking the newest not otherwise kept (`min-keep`).
 * Counting days and months that *have* a backup, not calendar windows, means a week of failed
 * runs never shrinks what is kept.
 */
export function planRetention<B extends RetainableBackup>(input: RetentionInput<B>): RetentionPlan<B> {
  const { now, rules } = input;
  const nowMs = now.getTime();
  const n = input.backups.length;
  const ms = new Float64Array(n);
  for (let i = 0; i < n; i += 1) ms[i] = (input.backups[i] as B).createdAt.getTime();
  const order =
    newestFirstBySecond(ms) ??
    Uint32Array.from(
      Array.from({ length: n }, (_, i) => i).sort((a, b) => {
        const d = (ms[b] as number) - (ms[a] as number);
        if (d !== 0) return d;
        const ia = (input.backups[a] as B).id;
        const ib = (input.backups[b] as B).id;
        return ia < ib ? 1 : ia > ib ? -1 : 0;
      }),
    );
  const sorted: B[] = [];
  const times = new Float64Array(n);
  for (let j = 0; j < n; j += 1) {
    const i = order[j] as number;
    sorted.push(input.backups[i] as B);
    times[j] = ms[i] as number;
  }
  const reasons: (KeepReason[] | undefined)[] = new Array(n);
  const add = (i: number, reason: KeepReason) => {
    const list = reasons[i];
    if (list) list.push(reason);
    else reasons[i] = [reason];
  };

  if (n > 0) add(0, 'newest');

  let days = 0;
  let lastDay = Number.NaN;
  for (let i = 0; i < n && days <= rules.daily; i += 1) {
    const day = Math.floor((times[i] as number) / DAY_MS);
    if (day === lastDay) continue;
    lastDay = day;
    days += 1;
    if (days <= rules.daily) add(i, 'daily');
  }

  // The earliest of a period is the last of its run in newest-first order.
  const keepEarliest = (count: number, reason: KeepReason, periods: ArrayLike<number>) => {
    let seen = 0;
    for (let i = 0; i < n && seen < count; i += 1) {
      if (i + 1 < n && periods[i] === periods[i + 1]) continue;
      add(i, reason);
      seen += 1;
    }
  };
  const months = new Int32Array(n);
  const years = new Int32Array(n);
  for (let i = 0; i < n; i += 1) {
    months[i] = monthIndex(times[i] as number);
    years[i] = Math.floor((months[i] as number) / 12);
  }
  keepEarliest(rules.monthly, 'monthly', months);
  keepEarliest(rules.yearly, 'yearly', years);

  let kept = 0;
  for (let i = 0; i < n; i += 1) if (reasons[i]) kept += 1;
  for (let i = 0; i < n && kept < rules.minKeep; i += 1) {
    if (reasons[i]) continue;
    add(i, 'min-keep');
    kept += 1;
  }

  const newestAge = n > 0 ? nowMs - (times[0] as number) : Number.POSITIVE_INFINITY;
  const blocked =
    n === 0
      ? 'no good backup exists'
      : newestAge > input.staleAfter
        ? `the newest good backup ${sorted[0]?.id} is ${hours(newestAge)} old, over the ${hours(input.staleAfter)} staleness threshold`
        : undefined;

  const keep: KeptBackup<B>[] = [];
  const remove: B[] = [];
  for (let i = 0; i < n; i += 1) {
    const r = reasons[i];
    const backup = sorted[i] as B;
    if (r) keep.push({ backup, reasons: r });
    else if (blocked) keep.push({ backup, reasons: ['stale-block'] });
    else remove.push(backup);
  }

  const debrisRemove: DebrisObject[] = [];
  const debrisKeep: { object: DebrisObject; reason: DebrisKeepReason }[] = [];
  for (const object of input.debris ?? []) {
    if (blocked) debrisKeep.push({ object, reason: 'stale-block' });
    else if (nowMs - object.lastModified.getTime() >= rules.debrisGrace) debrisRemove.push(object);
    else debrisKeep.push({ object, reason: 'grace' });
  }

  return {
    now,
    ...(blocked ? { blocked } : {}),
    keep,
    remove,
    debris: { remove: debrisRemove, keep: debrisKeep },
  };
}

/**
 * Indices of `ms`, newest first, by one native sort of float keys packing each whole second with
 * its index. Backup ids are to the second, so one database's backups never share a second; when
 * some do, or the span is too wide to pack exactly, undefined (the caller sorts the slow way).
 */
function newestFirstBySecond(ms: Float64Array): Uint32Array | undefined {
  const n = ms.length;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i += 1) {
    const sec = Math.floor((ms[i] as number) / 1000);
    if (sec < lo) lo = sec;
    if (sec > hi) hi = sec;
  }
  const slots = 2 ** Math.ceil(Math.log2(Math.max(n, 2)));
  if (!(n > 0) || (hi - lo + 1) * slots >= Number.MAX_SAFE_INTEGER) return undefined;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i += 1) keys[i] = (Math.floor((ms[i] as number) / 1000) - lo) * slots + i;
  keys.sort();
  const order = new Uint32Array(n);
  let previous = Number.NaN;
  for (let j = 0; j < n; j += 1) {
    const key = keys[n - 1 - j] as number;
    const sec = Math.floor(key / slots);
    if (sec === previous) return undefined;
    previous = sec;
    order[j] = key - sec * slots;
  }
  return order;
}

/** Object Lock as read from the store: a retention date, a legal hold, or both. */
export interface LockState {
  readonly retainUntil?: Date;
  readonly legalHold?: boolean;
}

/** Whether a lock still forbids deleting at `now`. */
export function isLocked(lock: LockState | undefined, now: Date): boolean {
  if (!lock) return false;
  return (
    lock.legalHold === true || (lock.retainUntil !== undefined && lock.retainUntil.getTime() > now.getTime())
  );
}

/**
 * Moves backups and debris under Object Lock from `remove` to `keep` with reason `object-lock`.
 * Deleting a locked object in a versioned bucket only hides it behind a delete marker, so it is
 * reported instead: the lock says someone wants it kept.
 */
export function holdLocked<B extends RetainableBackup>(
  plan: RetentionPlan<B>,
  lockedBackupIds: ReadonlySet<string>,
  lockedDebrisKeys: ReadonlySet<string> = new Set(),
): RetentionPlan<B> {
  if (lockedBackupIds.size === 0 && lockedDebrisKeys.size === 0) return plan;
  const held = plan.remove.filter((b) => lockedBackupIds.has(b.id));
  const keep = [
    ...plan.keep,
    ...held.map((backup) => ({ backup, reasons: ['object-lock'] as KeepReason[] })),
  ].sort(
    (a, b) =>
      b.backup.createdAt.getTime() - a.backup.createdAt.getTime() || (a.backup.id < b.backup.id ? 1 : -1),
  );
  return {
    ...plan,
    keep,
    remove: plan.remove.filter((b) => !lockedBackupIds.has(b.id)),
    debris: {
      remove: plan.debris.remove.filter((d) => !lockedDebrisKeys.has(d.key)),
      keep: [
        ...plan.debris.keep,
        ...plan.debris.remove
          .filter((d) => lockedDebrisKeys.has(d.key))
          .map((object) => ({ object, reason: 'object-lock' as const })),
      ],
    },
  };
}
