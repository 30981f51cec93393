import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { judgeSize, median, type SizeRules } from '../../../lib/domain/size-check.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** The config defaults: warn below half or above double the baseline; 2 KiB or less is empty. */
const DEFAULTS: SizeRules = { baselineCount: 7, warnBelowRatio: 0.5, warnAboveRatio: 2, emptyBytes: 2 * KIB };

describe('judgeSize', () => {
  it('calls an empty dump an error even with no range and no history', () => {
    const verdict = judgeSize(0, [], DEFAULTS);
    expect(verdict.status).toBe('error');
    expect(verdict.reasons[0]).toMatch(/empty or near-empty/);
    expect(judgeSize(2 * KIB, [], DEFAULTS).status).toBe('error');
    expect(judgeSize(2 * KIB + 1, [], DEFAULTS).status).toBe('ok');
  });

  it('warns at 40 % of the baseline median by default, with the numbers in the reason', () => {
    const history = [100, 98, 102, 100, 99, 101, 100].map((n) => n * MIB);
    const verdict = judgeSize(40 * MIB, history, DEFAULTS);
    expect(verdict.status).toBe('warning');
    expect(verdict.baseline).toMatchObject({ count: 7, medianBytes: 100 * MIB, lowBytes: 50 * MIB });
    expect(verdict.reasons).toEqual([
      'the dump is 40.0 MiB, 40 % of the median of the last 7 good backups (100.0 MiB); below the 50 % warning line',
    ]);
  });

  it('accepts a backup within the baseline band and warns above twice the median', () => {
    const history = [10 * MIB, 10 * MIB, 10 * MIB];
    expect(judgeSize(6 * MIB, history, DEFAULTS).status).toBe('ok');
    expect(judgeSize(19 * MIB, history, DEFAULTS).status).toBe('ok');
    const above = judgeSize(25 * MIB, history, DEFAULTS);
    expect(above.status).toBe('warning');
    expect(above.reasons[0]).toMatch(
      /250 % of the median of the last 3 good backups.*above the 200 % warning line/,
    );
  });

  it('uses only the absolute range for a database with no history', () => {
    const rules = { ...DEFAULTS, minBytes: 1 * MIB, maxBytes: 10 * MIB };
    const small = judgeSize(512 * KIB, [], rules);
    expect(small).toMatchObject({ status: 'error', baseline: null });
    expect(small.reasons).toEqual(['the dump is 512.0 KiB, below the configured minimum of 1.0 MiB']);
    expect(judgeSize(11 * MIB, [], rules).reasons).toEqual([
      'the dump is 11.0 MiB, above the configured maximum of 10.0 MiB',
    ]);
    expect(judgeSize(5 * MIB, [], rules)).toMatchObject({ status: 'ok', reasons: [], baseline: null });
  });

  it('makes an out-of-range size an error even when the baseline agrees with it', () => {
    const verdict = judgeSize(500 * KIB, [500 * KIB, 510 * KIB], { ...DEFAULTS, minBytes: 1 * MIB });
    expect(verdict.status).toBe('error');
  });

  it('builds the baseline from the newest baselineCount backups only', () => {
    const history = [10 * MIB, 10 * MIB, 10 * MIB, 1 * MIB, 1 * MIB, 1 * MIB, 1 * MIB];
    const verdict = judgeSize(4 * MIB, history, { ...DEFAULTS, baselineCount: 3 });
    expect(verdict.baseline?.count).toBe(3);
    expect(verdict.status).toBe('warning');
  });

  it('takes the median of an even count as the mean of the middle two', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('errs exactly when a size is empty or outside the range, whatever the history', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 * MIB }),
        fc.array(fc.integer({ min: 0, max: 10 * MIB }), { maxLength: 12 }),
        fc.option(fc.integer({ min: 0, max: 5 * MIB }), { nil: undefined }),
        fc.option(fc.integer({ min: 5 * MIB, max: 10 * MIB }), { nil: undefined }),
        (size, history, minBytes, maxBytes) => {
          const rules = { ...DEFAULTS, minBytes, maxBytes };
          const verdict = judgeSize(size, history, rules);
          const outOfRange =
            size <= rules.emptyBytes ||
            (minBytes !== undefined && size < minBytes) ||
            (maxBytes !== undefined && size > maxBytes);
          expect(verdict.status === 'error').toBe(outOfRange);
          expect(verdict.status === 'ok').toBe(verdict.reasons.length === 0);
          if (history.length === 0) expect(verdict.status).not.toBe('warning');
        },
      ),
      { numRuns: 2000 },
    );
  });
});
