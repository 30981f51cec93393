import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backupIdFor, classifyTier } from '../../../lib/domain/backup-layout.js';
import {
  type DebrisObject,
  holdLocked,
  isLocked,
  monthIndex,
  planRetention,
  type RetainableBackup,
  type RetentionRules,
} from '../../../lib/domain/retention.js';
import { dailyDates } from '../../support/manifests.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const GUIDE: RetentionRules = { daily: 7, monthly: 12, yearly: 7, minKeep: 3, debrisGrace: DAY };

function backup(at: Date | string): RetainableBackup {
  const createdAt = new Date(at);
  return { id: backupIdFor('db', createdAt), createdAt, tier: classifyTier(createdAt) };
}

function ids(list: readonly { backup: RetainableBackup }[] | readonly RetainableBackup[]): string[] {
  return list.map((x) => ('backup' in x ? x.backup.id : x.id));
}

function day(iso: string, hour = 2): string {
  return backupIdFor('db', new Date(`${iso}T${String(hour).padStart(2, '0')}:00:00Z`));
}

describe('planRetention on hand-built calendars', () => {
  it('keeps 7 daily, the 1st of each of 12 months and of each of 7 years across a year end', () => {
    const backups = dailyDates('2024-11-15', '2026-01-10').map(backup);
    const plan = planRetention({
      now: new Date('2026-01-10T03:00:00Z'),
      rules: GUIDE,
      staleAfter: DAY,
      backups,
    });
    const expected = [
      ...['2026-01-10', '2026-01-09', '2026-01-08', '2026-01-07', '2026-01-06', '2026-01-05', '2026-01-04'],
      '2026-01-01',
      ...['12', '11', '10', '09', '08', '07', '06', '05', '04', '03', '02'].map((m) => `2025-${m}-01`),
      '2025-01-01',
      '2024-11-15',
    ].map((d) => day(d));
    expect(ids(plan.keep)).toEqual(expected);
    expect(plan.blocked).toBeUndefined();
    expect(plan.keep.length + plan.remove.length).toBe(backups.length);
    const reasons = new Map(plan.keep.map((k) => [k.backup.id, k.reasons]));
    expect(reasons.get(day('2026-01-10'))).toEqual(['newest', 'daily']);
    expect(reasons.get(day('2026-01-01'))).toEqual(['monthly', 'yearly']);
    expect(reasons.get(day('2025-02-01'))).toEqual(['monthly']);
    expect(reasons.get(day('2025-01-01'))).toEqual(['yearly']);
    expect(reasons.get(day('2024-11-15'))).toEqual(['yearly']);
  });

  it('drops the monthly of 13 months ago on the 1st of a new month, across February in a leap year', () => {
    const backups = dailyDates('2023-01-01', '2024-03-01').map(backup);
    const plan = planRetention({
      now: new Date('2024-03-01T05:00:00Z'),
      rules: GUIDE,
      staleAfter: DAY,
      backups,
    });
    const monthly = plan.keep.filter((k) => k.reasons.includes('monthly')).map((k) => k.backup.id);
    expect(monthly).toEqual(
      [
        '2024-03-01',
        '2024-02-01',
        '2024-01-01',
        ...['12', '11', '10', '09', '08', '07', '06', '05', '04'].map((m) => `2023-${m}-01`),
      ].map((d) => day(d)),
    );
    const daily = plan.keep.filter((k) => k.reasons.includes('daily')).map((k) => k.backup.id);
    expect(daily).toEqual(
      ['2024-03-01', '2024-02-29', '2024-02-28', '2024-02-27', '2024-02-26', '2024-02-25', '2024-02-24'].map(
        (d) => day(d),
      ),
    );
    expect(ids(plan.remove)).toContain(day('2023-03-01'));
    expect(ids(plan.keep)).toContain(day('2023-01-01'));
  });

  it('keeps 7 days that have a backup when a week of runs failed, rather than 7 calendar days', () => {
    const dates = dailyDates('2025-12-01', '2026-01-05').filter(
      (d) => d < new Date('2025-12-28T00:00:00Z') || d > new Date('2026-01-03T23:59:59Z'),
    );
    const plan = planRetention({
      now: new Date('2026-01-05T04:00:00Z'),
      rules: GUIDE,
      staleAfter: DAY,
      backups: dates.map(backup),
    });
    const daily = plan.keep.filter((k) => k.reasons.includes('daily')).map((k) => k.backup.id);
    expect(daily).toEqual(
      ['2026-01-05', '2026-01-04', '2025-12-27', '2025-12-26', '2025-12-25', '2025-12-24', '2025-12-23'].map(
        (d) => day(d),
      ),
    );
  });

  it('takes the first backup after a missed 1st as the month’s backup, and the newest of a day as its daily', () => {
    const backups = [
      ...dailyDates('2026-01-25', '2026-01-31'),
      // 1 February failed; the 2nd ran, and a manual backup ran at 14:00 on the 3rd.
      ...dailyDates('2026-02-02', '2026-02-05'),
      new Date('2026-02-03T14:00:00Z'),
    ].map(backup);
    const plan = planRetention({
      now: new Date('2026-02-05T03:00:00Z'),
      rules: { ...GUIDE, daily: 3 },
      staleAfter: DAY,
      backups,
    });
    const reasons = new Map(plan.keep.map((k) => [k.backup.id, k.reasons]));
    expect(reasons.get(day('2026-02-02'))).toEqual(['monthly']);
    expect(reasons.get(day('2026-02-03', 14))).toEqual(['daily']);
    expect(reasons.has(day('2026-02-03'))).toBe(false);
    expect(reasons.get(day('2026-01-25'))).toEqual(['monthly', 'yearly']);
  });

  it('holds everything, debris too, when the newest good backup is older than the threshold', () => {
    const backups = dailyDates('2025-01-01', '2025-03-01').map(backup);
    const debris: DebrisObject[] = [{ key: 'db/old.dump', lastModified: new Date('2025-01-05T00:00:00Z') }];
    const plan = planRetention({
      now: new Date('2025-03-03T03:00:00Z'),
      rules: GUIDE,
      staleAfter: DAY,
      backups,
      debris,
    });
    expect(plan.remove).toEqual([]);
    expect(plan.debris.remove).toEqual([]);
    expect(plan.keep).toHaveLength(backups.length);
    expect(plan.blocked).toMatch(/db-20250301T020000Z is 49\.0 h old, over the 24\.0 h staleness threshold/);
    expect(plan.keep.find((k) => k.backup.id === day('2025-01-15'))?.reasons).toEqual(['stale-block']);
    expect(plan.debris.keep).toEqual([{ object: debris[0], reason: 'stale-block' }]);
  });

  it('holds debris when there is no good backup at all', () => {
    const debris = [{ key: 'db/x.dump', lastModified: new Date('2025-01-01T00:00:00Z') }];
    const plan = planRetention({
      now: new Date('2025-06-01T00:00:00Z'),
      rules: GUIDE,
      staleAfter: DAY,
      backups: [],
      debris,
    });
    expect(plan.blocked).toBe('no good backup exists');
    expect(plan.debris.remove).toEqual([]);
  });

  it('removes debris once older than the grace period and leaves younger debris for its writer', () => {
    const now = new Date('2026-03-10T12:00:00Z');
    const old = { key: 'db/old.dump', lastModified: new Date(now.getTime() - 25 * HOUR) };
    const young = { key: 'db/young.dump', lastModified: new Date(now.getTime() - 23 * HOUR) };
    const plan = planRetention({
      now,
      rules: GUIDE,
      staleAfter: DAY,
      backups: [backup('2026-03-10T02:00:00Z')],
      debris: [old, young],
    });
    expect(plan.debris.remove).toEqual([old]);
    expect(plan.debris.keep).toEqual([{ object: young, reason: 'grace' }]);
  });

  it('keeps minKeep newest backups even when every GFS count is zero', () => {
    const backups = dailyDates('2026-03-01', '2026-03-10').map(backup);
    const plan = planRetention({
      now: new Date('2026-03-10T03:00:00Z'),
      rules: { daily: 0, monthly: 0, yearly: 0, minKeep: 4, debrisGrace: DAY },
      staleAfter: DAY,
      backups,
    });
    expect(plan.keep.map((k) => k.reasons)).toEqual([['newest'], ['min-keep'], ['min-keep'], ['min-keep']]);
    expect(ids(plan.keep)).toEqual(
      ['2026-03-10', '2026-03-09', '2026-03-08', '2026-03-07'].map((d) => day(d)),
    );
  });

  it('moves locked backups and debris from the delete list to the kept list, reason object-lock', () => {
    const backups = dailyDates('2026-01-01', '2026-03-10').map(backup);
    const debris = [{ key: 'db/d.dump', lastModified: new Date('2026-01-01T00:00:00Z') }];
    const plan = planRetention({
      now: new Date('2026-03-10T03:00:00Z'),
      rules: GUIDE,
      staleAfter: DAY,
      backups,
      debris,
    });
    const lockedId = day('2026-01-20');
    expect(ids(plan.remove)).toContain(lockedId);
    const held = holdLocked(plan, new Set([lockedId]), new Set(['db/d.dump']));
    expect(ids(held.remove)).not.toContain(lockedId);
    expect(held.keep.find((k) => k.backup.id === lockedId)?.reasons).toEqual(['object-lock']);
    expect(held.debris.remove).toEqual([]);
    expect(held.debris.keep).toEqual([{ object: debris[0], reason: 'object-lock' }]);
    const times = held.keep.map((k) => k.backup.createdAt.getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it('counts a retention date in the future or a legal hold as a lock, an expired date not', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    expect(isLocked({ retainUntil: new Date('2026-01-02T00:00:00Z') }, now)).toBe(true);
    expect(isLocked({ retainUntil: new Date('2025-12-31T00:00:00Z') }, now)).toBe(false);
    expect(isLocked({ legalHold: true }, now)).toBe(true);
    expect(isLocked({ legalHold: false }, now)).toBe(false);
    expect(isLocked(undefined, now)).toBe(false);
  });
});

describe('monthIndex', () => {
  it('agrees with the UTC calendar of Date for any instant, leap years and centuries included', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
        const d = new Date(ms);
        expect(monthIndex(ms)).toBe(d.getUTCFullYear() * 12 + d.getUTCMonth());
      }),
      { numRuns: 5000 },
    );
    expect(monthIndex(Date.parse('2024-02-29T23:59:59.999Z'))).toBe(2024 * 12 + 1);
    expect(monthIndex(Date.parse('2024-03-01T00:00:00Z'))).toBe(2024 * 12 + 2);
    expect(monthIndex(Date.parse('1969-12-31T23:59:59.999Z'))).toBe(1969 * 12 + 11);
  });
});

/** The GFS rules written plainly, as a reference for the fast planner. */
function referenceKeep(backups: readonly RetainableBackup[], rules: RetentionRules): Set<string> {
  const desc = [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  const keep = new Set<string>();
  if (desc[0]) keep.add(desc[0].id);
  const group = (len: number) => {
    const groups = new Map<string, RetainableBackup[]>();
    for (const b of desc) {
      const k = b.createdAt.toISOString().slice(0, len);
      groups.set(k, [...(groups.get(k) ?? []), b]);
    }
    return [...groups.entries()].sort((a, b) => (a[0] < b[0] ? 1 : -1)).map(([, list]) => list);
  };
  for (const list of group(10).slice(0, rules.daily)) keep.add((list[0] as RetainableBackup).id);
  for (const list of group(7).slice(0, rules.monthly)) keep.add((list.at(-1) as RetainableBackup).id);
  for (const list of group(4).slice(0, rules.yearly)) keep.add((list.at(-1) as RetainableBackup).id);
  for (const b of desc) {
    if (keep.size >= rules.minKeep) break;
    keep.add(b.id);
  }
  return keep;
}

const START = Date.parse('2015-01-01T00:00:00Z');
const SPAN_S = 12 * 365 * 86_400;

const catalogArb = fc
  .record({
    // Seconds since START: unique, so every backup has its own id.
    seconds: fc.uniqueArray(fc.integer({ min: 0, max: SPAN_S }), { maxLength: 120 }),
    // Backups clustered in a recent stretch, so days and months hold several.
    recent: fc.uniqueArray(fc.integer({ min: SPAN_S - 90 * 86_400, max: SPAN_S }), { maxLength: 80 }),
    rules: fc.record({
      daily: fc.integer({ min: 0, max: 10 }),
      monthly: fc.integer({ min: 0, max: 15 }),
      yearly: fc.integer({ min: 0, max: 8 }),
      minKeep: fc.integer({ min: 1, max: 12 }),
      debrisGrace: fc.integer({ min: 0, max: 72 * HOUR }),
    }),
    staleAfterHours: fc.integer({ min: 1, max: 72 }),
    nowAfterNewestMs: fc.integer({ min: -2 * HOUR, max: 96 * HOUR }),
    debrisAgesMs: fc.array(fc.integer({ min: 0, max: 30 * DAY }), { maxLength: 6 }),
  })
  .map(({ seconds, recent, rules, staleAfterHours, nowAfterNewestMs, debrisAgesMs }) => {
    const all = [...new Set([...seconds, ...recent])];
    const backups = all.map((s) => backup(new Date(START + s * 1000)));
    const newest = backups.reduce((m, b) => Math.max(m, b.createdAt.getTime()), START);
    const now = new Date(newest + nowAfterNewestMs);
    const debris = debrisAgesMs.map((age, i) => ({
      key: `db/debris-${i}.dump`,
      lastModified: new Date(now.getTime() - age),
    }));
    return { backups, rules, staleAfter: staleAfterHours * HOUR, now, debris };
  });

describe('planRetention invariants over random catalogs and clocks', () => {
  it('keeps exactly the GFS set of the plain reference, or everything when stale', () => {
    fc.assert(
      fc.property(catalogArb, ({ backups, rules, staleAfter, now, debris }) => {
        const plan = planRetention({ now, rules, staleAfter, backups, debris });
        const kept = new Set(ids(plan.keep));
        if (plan.blocked) expect(kept.size).toBe(backups.length);
        else expect(kept).toEqual(referenceKeep(backups, rules));
      }),
      { numRuns: 3000 },
    );
  });

  it('never deletes the newest good backup, always keeps minKeep, and deletes nothing when stale', () => {
    fc.assert(
      fc.property(catalogArb, ({ backups, rules, staleAfter, now, debris }) => {
        const plan = planRetention({ now, rules, staleAfter, backups, debris });
        const keptIds = ids(plan.keep);
        const removedIds = ids(plan.remove);
        // A partition of the input: every backup kept or removed, none both.
        expect([...keptIds, ...removedIds].sort()).toEqual(ids(backups).sort());
        expect(new Set([...keptIds, ...removedIds]).size).toBe(backups.length);
        const newest = [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())[0];
        if (newest) expect(keptIds).toContain(newest.id);
        expect(plan.keep.length).toBeGreaterThanOrEqual(Math.min(rules.minKeep, backups.length));
        for (const k of plan.keep) expect(k.reasons.length).toBeGreaterThan(0);
        const stale = !newest || now.getTime() - newest.createdAt.getTime() > staleAfter;
        expect(plan.blocked !== undefined).toBe(stale);
        if (stale) {
          expect(plan.remove).toEqual([]);
          expect(plan.debris.remove).toEqual([]);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('removes debris only past its grace period, and all of it past grace when not blocked', () => {
    fc.assert(
      fc.property(catalogArb, ({ backups, rules, staleAfter, now, debris }) => {
        const plan = planRetention({ now, rules, staleAfter, backups, debris });
        for (const d of plan.debris.remove) {
          expect(now.getTime() - d.lastModified.getTime()).toBeGreaterThanOrEqual(rules.debrisGrace);
        }
        expect(plan.debris.remove.length + plan.debris.keep.length).toBe(debris.length);
        if (!plan.blocked) {
          const due = debris.filter((d) => now.getTime() - d.lastModified.getTime() >= rules.debrisGrace);
          expect(plan.debris.remove).toEqual(due);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('deletes nothing more when run again on what it kept', () => {
    fc.assert(
      fc.property(catalogArb, ({ backups, rules, staleAfter, now }) => {
        const first = planRetention({ now, rules, staleAfter, backups });
        const again = planRetention({ now, rules, staleAfter, backups: first.keep.map((k) => k.backup) });
        expect(again.remove).toEqual([]);
      }),
      { numRuns: 2000 },
    );
  });

  it('never deletes a locked backup and changes nothing else about the plan', () => {
    fc.assert(
      fc.property(
        catalogArb,
        fc.infiniteStream(fc.boolean()),
        ({ backups, rules, staleAfter, now, debris }, coin) => {
          const plan = planRetention({ now, rules, staleAfter, backups, debris });
          const locked = new Set(backups.filter(() => coin.next().value).map((b) => b.id));
          const held = holdLocked(plan, locked);
          for (const b of held.remove) expect(locked.has(b.id)).toBe(false);
          expect(ids(held.remove)).toEqual(ids(plan.remove).filter((id) => !locked.has(id)));
          expect(held.keep.length + held.remove.length).toBe(backups.length);
          for (const k of held.keep) {
            const before = plan.keep.find((p) => p.backup.id === k.backup.id);
            expect(k.reasons).toEqual(before ? before.reasons : ['object-lock']);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
