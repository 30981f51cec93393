import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { archiveGaps, archiveLag } from '../../../lib/domain/wal-archive-health.js';
import { segmentName } from '../../../lib/domain/wal-names.js';

const at = (iso: string) => new Date(iso);
const FIVE_MIN = 5 * 60_000;

describe('archive lag against the RPO', () => {
  it('is not stale on an idle server, however old the newest archived segment is', () => {
    const lag = archiveLag(
      { currentSegment: '00000001000000000000000B', failedCount: 0 },
      { newestSegment: '00000001000000000000000A', newestAt: at('2026-01-01T00:00:00Z') },
      at('2026-03-01T00:00:00Z'),
      FIVE_MIN,
    );
    expect(lag).toMatchObject({ segmentsBehind: 0, lagSeconds: 0, stale: false, failing: false });
  });

  it('is stale when complete segments wait longer than the RPO, and says by how much', () => {
    const server = { currentSegment: '00000001000000000000000E', failedCount: 0 };
    const archive = { newestSegment: '00000001000000000000000A', newestAt: at('2026-03-01T00:00:00Z') };
    expect(archiveLag(server, archive, at('2026-03-01T00:04:00Z'), FIVE_MIN)).toMatchObject({
      segmentsBehind: 3,
      stale: false,
    });
    const late = archiveLag(server, archive, at('2026-03-01T00:06:00Z'), FIVE_MIN);
    expect(late).toMatchObject({ segmentsBehind: 3, lagSeconds: 360, stale: true });
    expect(late.reasons.join('\n')).toMatch(/3 segment\(s\) behind .* over the RPO of 300 s/);
  });

  it('is failing while the last attempt is newer than the last success', () => {
    const lag = archiveLag(
      {
        currentSegment: '00000001000000000000000B',
        lastArchivedWal: '000000010000000000000009',
        lastArchivedAt: at('2026-03-01T00:00:00Z'),
        lastFailedWal: '00000001000000000000000A',
        lastFailedAt: at('2026-03-01T00:01:00Z'),
        failedCount: 4,
      },
      { newestSegment: '000000010000000000000009', newestAt: at('2026-03-01T00:00:00Z') },
      at('2026-03-01T00:02:00Z'),
      FIVE_MIN,
    );
    expect(lag).toMatchObject({ failing: true, stale: false, segmentsBehind: 1 });
    expect(lag.reasons.join('\n')).toContain('00000001000000000000000A');
  });
});

describe('archive continuity', () => {
  it('finds every missing run between the oldest and newest segment of each timeline, and nothing else', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 600 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 80 }), { minLength: 1, maxLength: 40 }),
        (timeline, start, offsets) => {
          const present = new Set(offsets.map((o) => start + o));
          const names = [...present].map((n) => segmentName(timeline, n));
          const gaps = archiveGaps([...names, '00000002.history', `${names[0]}.partial`]);
          const missing = new Set<number>();
          for (let n = Math.min(...present); n <= Math.max(...present); n++)
            if (!present.has(n)) missing.add(n);
          expect(gaps.reduce((sum, g) => sum + g.missing, 0)).toBe(missing.size);
          for (const g of gaps) {
            expect(g.timeline).toBe(timeline);
            expect(names).not.toContain(g.from);
            expect(names).not.toContain(g.to);
          }
        },
      ),
    );
  });

  it('counts across the 4 GiB log boundary', () => {
    expect(archiveGaps(['0000000100000000000000FE', '000000010000000100000001'])).toEqual([
      { timeline: 1, from: '0000000100000000000000FF', to: '000000010000000100000000', missing: 2 },
    ]);
  });
});
