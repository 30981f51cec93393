import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ArchivedWalFile,
  planBaseBackups,
  planPhysicalRetention,
  type RetainableBase,
} from '../../../lib/domain/physical-retention.js';
import { historyFileName, segmentName, segmentNumber } from '../../../lib/domain/wal-names.js';

const DAY = 86_400_000;
const NOW = new Date('2026-12-01T00:00:00Z');
const ago = (days: number) => new Date(NOW.getTime() - days * DAY);
const seg = (tl: number, n: number): ArchivedWalFile => {
  const name = segmentName(tl, n);
  return { name, key: `wal/${name}`, archivedAt: NOW };
};

function base(id: string, timeline: number, startN: number, stopDaysAgo: number): RetainableBase {
  return { id, timeline, startWal: segmentName(timeline, startN), stopTime: ago(stopDaysAgo).toISOString() };
}

describe('base backup retention', () => {
  it('keeps those that ended within the window and the newest one before it, so every second of the window is reachable', () => {
    const bases = [0, 7, 14.5, 21, 28].map((d, i) => base(`b${i}`, 1, i, d));
    const { keep, remove } = planBaseBackups(bases, NOW, 14 * DAY);
    expect(keep.map((b) => b.id)).toEqual(['b0', 'b1', 'b2']);
    expect(remove.map((b) => b.id)).toEqual(['b3', 'b4']);
    // All older than the window: the newest is still kept, never the last good one removed.
    expect(planBaseBackups(bases.slice(3), NOW, DAY).keep.map((b) => b.id)).toEqual(['b3']);
  });
});

describe('WAL retention', () => {
  it('keeps the WAL of the window and from the oldest kept base backup on, and removes only older segments', () => {
    // One segment a day for 30 days on timeline 1; base backups 20 and 10 days ago, window 14 days.
    const files = Array.from({ length: 30 }, (_, i) => ({ ...seg(1, i + 1), archivedAt: ago(30 - i) }));
    const bases = [base('old', 1, 2, 28), base('anchor', 1, 11, 20), base('new', 1, 21, 10)];
    const plan = planPhysicalRetention({
      now: NOW,
      walWindowMs: 14 * DAY,
      pitrWindowMs: 14 * DAY,
      bases,
      files,
    });
    expect(plan.keepBases.map((b) => b.id)).toEqual(['new', 'anchor']);
    expect(plan.removeBases.map((b) => b.id)).toEqual(['old']);
    // The anchor starts at segment 11: everything from there on stays, even beyond the window.
    expect(plan.keepFrom.get(1)).toBe(segmentName(1, 11));
    expect(plan.removeFiles.map((f) => f.name)).toEqual(files.slice(0, 10).map((f) => f.name));
  });

  it('removes nothing while there is no base backup', () => {
    const files = [{ ...seg(1, 1), archivedAt: ago(100) }];
    const plan = planPhysicalRetention({ now: NOW, walWindowMs: DAY, pitrWindowMs: DAY, bases: [], files });
    expect(plan.blocked).toMatch(/no base backup/);
    expect(plan.removeFiles).toEqual([]);
  });

  it('keeps the history files of the timelines in use, and removes those of abandoned ones', () => {
    const files: ArchivedWalFile[] = [
      { ...seg(1, 3), archivedAt: ago(40) },
      { name: historyFileName(2), key: 'h2', archivedAt: ago(39) },
      { ...seg(2, 4), archivedAt: ago(39) },
      { name: historyFileName(3), key: 'h3', archivedAt: ago(38) },
      { ...seg(3, 5), archivedAt: ago(1) },
      // Timeline 4 branched from 2 long ago and was never used again.
      { name: historyFileName(4), key: 'h4', archivedAt: ago(35) },
      { ...seg(4, 6), archivedAt: ago(35) },
    ];
    const histories = new Map([
      [2, '1\t0/4000000\tno recovery target specified\n'],
      [3, '1\t0/4000000\tno recovery target specified\n2\t0/5000000\tno recovery target specified\n'],
      [4, '1\t0/4000000\tno recovery target specified\n2\t0/6000000\tno recovery target specified\n'],
    ]);
    const plan = planPhysicalRetention({
      now: NOW,
      walWindowMs: 14 * DAY,
      pitrWindowMs: 14 * DAY,
      bases: [base('b', 3, 5, 1)],
      files,
      histories,
    });
    expect(plan.keepFiles.map((f) => f.name)).toEqual([
      historyFileName(2),
      historyFileName(3),
      segmentName(3, 5),
    ]);
  });

  /** An archive: per timeline, a run of segments with gaps, archived about in order with jitter. */
  const archive = fc
    .record({
      timelines: fc.array(
        fc.record({
          first: fc.integer({ min: 0, max: 40 }),
          length: fc.integer({ min: 1, max: 40 }),
          holes: fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 3 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      hoursPerSegment: fc.integer({ min: 1, max: 30 }),
      jitterHours: fc.array(fc.integer({ min: -12, max: 12 }), { minLength: 120, maxLength: 120 }),
      walWindowDays: fc.integer({ min: 1, max: 20 }),
      pitrWindowDays: fc.integer({ min: 1, max: 20 }),
      baseSeeds: fc.array(fc.record({ at: fc.nat(), timeline: fc.nat() }), { maxLength: 6 }),
    })
    .map((a) => {
      const files: ArchivedWalFile[] = [];
      let clock = 0;
      a.timelines.forEach((t, i) => {
        const tl = i + 1;
        for (let k = 0; k < t.length; k += 1) {
          const n = t.first + k;
          clock += 1;
          if (t.holes.includes(k)) continue;
          const hours = clock * a.hoursPerSegment + (a.jitterHours[files.length % 120] ?? 0);
          files.push({ ...seg(tl, n), archivedAt: new Date(NOW.getTime() - 1000 * DAY + hours * 3_600_000) });
        }
      });
      // Moved so the newest file is a little before now.
      const newest = Math.max(...files.map((f) => f.archivedAt.getTime()));
      const shift = NOW.getTime() - 3_600_000 - newest;
      const shifted = files.map((f) => ({ ...f, archivedAt: new Date(f.archivedAt.getTime() + shift) }));
      const segments = shifted.filter((f) => f.name.length === 24);
      // Every segment may be a hole: an empty archive has no base backup to start from.
      const bases: RetainableBase[] = (segments.length > 0 ? a.baseSeeds : []).map((s, i) => {
        const start = segments[s.at % segments.length] as ArchivedWalFile;
        return {
          id: `b${i}`,
          timeline: Number.parseInt(start.name.slice(0, 8), 16),
          startWal: start.name,
          stopTime: new Date(start.archivedAt.getTime() + 60_000).toISOString(),
        };
      });
      return {
        files: shifted,
        bases,
        walWindowMs: a.walWindowDays * DAY,
        pitrWindowMs: a.pitrWindowDays * DAY,
      };
    });

  it('never removes a segment a kept base backup needs, nor anything archived within the window', () => {
    fc.assert(
      fc.property(archive, ({ files, bases, walWindowMs, pitrWindowMs }) => {
        const plan = planPhysicalRetention({ now: NOW, walWindowMs, pitrWindowMs, bases, files });
        for (const f of plan.removeFiles) {
          expect(f.archivedAt.getTime()).toBeLessThan(NOW.getTime() - walWindowMs);
          const tl = Number.parseInt(f.name.slice(0, 8), 16);
          const n = segmentNumber(f.name);
          for (const b of plan.keepBases) {
            const needed = tl >= b.timeline && n >= segmentNumber(b.startWal);
            expect(needed, `${f.name} is needed by ${b.id}`).toBe(false);
          }
        }
        expect(plan.keepFiles.length + plan.removeFiles.length).toBe(files.length);
      }),
      { numRuns: 300 },
    );
  });

  it('never leaves a gap inside what it keeps: on each timeline only the oldest segments go', () => {
    fc.assert(
      fc.property(archive, ({ files, bases, walWindowMs, pitrWindowMs }) => {
        const plan = planPhysicalRetention({ now: NOW, walWindowMs, pitrWindowMs, bases, files });
        const keptOn = new Map<number, number[]>();
        for (const f of plan.keepFiles) {
          const tl = Number.parseInt(f.name.slice(0, 8), 16);
          keptOn.set(tl, [...(keptOn.get(tl) ?? []), segmentNumber(f.name)]);
        }
        for (const f of plan.removeFiles) {
          const tl = Number.parseInt(f.name.slice(0, 8), 16);
          for (const k of keptOn.get(tl) ?? []) expect(segmentNumber(f.name)).toBeLessThan(k);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the newest base backup and one to start from for every second of the PITR window', () => {
    fc.assert(
      fc.property(archive, ({ files, bases, walWindowMs, pitrWindowMs }) => {
        const plan = planPhysicalRetention({ now: NOW, walWindowMs, pitrWindowMs, bases, files });
        if (bases.length === 0) {
          expect(plan.removeFiles).toEqual([]);
          return;
        }
        const newest = [...bases].sort((a, b) => (a.stopTime < b.stopTime ? 1 : -1))[0] as RetainableBase;
        expect(plan.keepBases.map((b) => b.stopTime)).toContain(newest.stopTime);
        // Any second of the window that some base backup could recover to, a kept one still can.
        const from = NOW.getTime() - pitrWindowMs;
        const reachable = (set: readonly RetainableBase[], t: number) =>
          set.some((b) => Date.parse(b.stopTime) <= t);
        for (const t of [from, ...bases.map((b) => Date.parse(b.stopTime))].filter((t) => t >= from)) {
          if (reachable(bases, t)) expect(reachable(plan.keepBases, t)).toBe(true);
        }
        expect(plan.keepBases.length + plan.removeBases.length).toBe(bases.length);
      }),
      { numRuns: 300 },
    );
  });
});
