import { describe, expect, it } from 'vitest';
import { archiveLag } from '../../../lib/monitor/archive-lag.js';

const now = new Date('2026-06-01T12:00:00Z');
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);
const seg = (n: number, archivedMinutesAgo: number) => ({
  name: `00000001000000000000${n.toString(16).toUpperCase().padStart(4, '0')}`,
  archivedAt: minutesAgo(archivedMinutesAgo),
});
const RPO = 5 * 60_000;

describe('archiveLag', () => {
  it('is empty when both stores hold the same segments', () => {
    const segments = [seg(1, 30), seg(2, 20)];
    expect(
      archiveLag({
        cluster: 'main',
        stores: [
          { role: 'primary', segments },
          { role: 'secondary', segments },
        ],
        now,
        rpoMs: RPO,
      }),
    ).toEqual([]);
  });

  it('counts the tail the secondary lacks and how long ago the oldest of it was archived', () => {
    const [lag, ...more] = archiveLag({
      cluster: 'main',
      stores: [
        { role: 'primary', segments: [seg(1, 30), seg(2, 20), seg(3, 12), seg(4, 2)] },
        { role: 'secondary', segments: [seg(1, 30), seg(2, 20)] },
      ],
      now,
      rpoMs: RPO,
    });
    expect(more).toEqual([]);
    expect(lag).toEqual({
      cluster: 'main',
      behind: 'secondary',
      ahead: 'primary',
      segments: 2,
      oldestMissing: seg(3, 0).name,
      seconds: 12 * 60,
      overRpo: true,
    });
  });

  it('is within the RPO while what is missing was archived only just now', () => {
    const [lag] = archiveLag({
      cluster: 'main',
      stores: [
        { role: 'primary', segments: [seg(1, 30), seg(2, 1)] },
        { role: 'secondary', segments: [seg(1, 30)] },
      ],
      now,
      rpoMs: RPO,
    });
    expect(lag).toMatchObject({ behind: 'secondary', segments: 1, overRpo: false });
  });

  it('sees a hole the primary was left with while it was down, and leaves out what retention removed', () => {
    const lags = archiveLag({
      cluster: 'main',
      stores: [
        // The NAS was down for segments 3 and 4; it no longer keeps segment 1.
        { role: 'primary', segments: [seg(2, 40), seg(5, 10)] },
        { role: 'secondary', segments: [seg(1, 50), seg(2, 40), seg(3, 30), seg(4, 20), seg(5, 10)] },
      ],
      now,
      rpoMs: RPO,
    });
    expect(lags).toEqual([
      expect.objectContaining({
        behind: 'primary',
        segments: 2,
        oldestMissing: seg(3, 0).name,
        seconds: 1800,
      }),
    ]);
  });

  it('takes a store with no WAL at all as lacking everything the other holds', () => {
    expect(
      archiveLag({
        cluster: 'main',
        stores: [
          { role: 'primary', segments: [seg(1, 30), seg(2, 20)] },
          { role: 'secondary', segments: [] },
        ],
        now,
        rpoMs: RPO,
      }),
    ).toEqual([expect.objectContaining({ behind: 'secondary', segments: 2, seconds: 1800, overRpo: true })]);
  });
});
