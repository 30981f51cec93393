import { describe, expect, it } from 'vitest';
import { type ArchivedSegment, checkContinuity, timelinePath } from '../../../lib/domain/wal-continuity.js';
import { segmentName } from '../../../lib/domain/wal-names.js';

const at = (minute: number) => new Date(Date.UTC(2026, 11, 1, 12, minute));
const seg = (tli: number, n: number, minute = n): ArchivedSegment => ({
  name: segmentName(tli, n),
  archivedAt: at(minute),
});
const MB16 = 16n * 1024n * 1024n;
const baseAt2 = { id: 'B', timeline: 1, startLsn: 2n * MB16 + 40n, stopLsn: 2n * MB16 + 400n };

describe('archive continuity', () => {
  it('reaches from the base backup to the newest segment when nothing is missing', () => {
    const result = checkContinuity({
      base: baseAt2,
      target: { kind: 'latest' },
      segments: [seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4)],
      histories: new Map(),
    });
    expect(result).toMatchObject({
      ok: true,
      targetTimeline: 1,
      segmentCount: 3,
      reachable: { segment: segmentName(1, 4), lsn: '0/5000000' },
    });
  });

  it('refuses a gap, naming the missing segment and the furthest reachable point', () => {
    const result = checkContinuity({
      base: baseAt2,
      target: { kind: 'time', time: at(10) },
      segments: [seg(1, 2), seg(1, 3), seg(1, 5), seg(1, 6, 20)],
      histories: new Map(),
    });
    expect(result).toMatchObject({ ok: false, missing: segmentName(1, 4), reachable: { lsn: '0/4000000' } });
    if (!result.ok)
      expect(result.reason).toMatch(
        /000000010000000000000004 is missing.*furthest point reachable is 0\/4000000/,
      );
    // A target before the gap needs nothing beyond it.
    expect(
      checkContinuity({
        base: baseAt2,
        target: { kind: 'time', time: at(3) },
        segments: [seg(1, 2), seg(1, 3), seg(1, 5)],
        histories: new Map(),
      }).ok,
    ).toBe(true);
  });

  it('refuses when the segments the base backup needs to become consistent are missing', () => {
    const result = checkContinuity({
      base: baseAt2,
      target: { kind: 'latest' },
      segments: [seg(1, 3)],
      histories: new Map(),
    });
    expect(result).toMatchObject({ ok: false, missing: segmentName(1, 2) });
  });

  it('follows the newest timeline through its history, taking each segment from the timeline that holds it', () => {
    const histories = new Map([[2, '1\t0/4000100\tno recovery target specified\n']]);
    expect(timelinePath(2, histories)).toEqual([
      { timeline: 1, beginLsn: 0n, endLsn: 4n * MB16 + 0x100n },
      { timeline: 2, beginLsn: 4n * MB16 + 0x100n },
    ]);
    const segments = [seg(1, 2), seg(1, 3), seg(2, 4), seg(2, 5)];
    expect(checkContinuity({ base: baseAt2, target: { kind: 'latest' }, segments, histories })).toMatchObject(
      {
        ok: true,
        targetTimeline: 2,
        reachable: { segment: segmentName(2, 5) },
      },
    );
    // The switch segment only on the old timeline: PostgreSQL reads the old one too.
    const old = [seg(1, 2), seg(1, 3), seg(1, 4)];
    expect(checkContinuity({ base: baseAt2, target: { kind: 'latest' }, segments: old, histories }).ok).toBe(
      true,
    );
    // A base backup taken on timeline 1 after timeline 2 branched off cannot follow it.
    const late = { id: 'L', timeline: 1, startLsn: 5n * MB16, stopLsn: 5n * MB16 + 400n };
    expect(
      checkContinuity({
        base: late,
        target: { kind: 'latest' },
        segments: [seg(1, 5), seg(2, 5)],
        histories,
      }),
    ).toMatchObject({ ok: false, reason: expect.stringMatching(/after timeline 2 branched off/) });
  });

  it('refuses an LSN target beyond the archive', () => {
    const result = checkContinuity({
      base: baseAt2,
      target: { kind: 'lsn', lsn: 6n * MB16 },
      segments: [seg(1, 2), seg(1, 3)],
      histories: new Map(),
    });
    expect(result).toMatchObject({ ok: false, missing: segmentName(1, 4) });
  });
});
