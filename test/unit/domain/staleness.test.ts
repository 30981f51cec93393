import { describe, expect, it } from 'vitest';
import { assessFreeSpace, assessStaleness, watchedDatabases } from '../../../lib/domain/staleness.js';

const HOUR = 3_600_000;

describe('assessStaleness', () => {
  const now = new Date('2026-06-20T12:00:00Z');

  it('is fresh at 23 hours and stale past 24, measured from when the backup was taken', () => {
    const fresh = assessStaleness(
      'db',
      { id: 'db-x', createdAt: new Date(now.getTime() - 23 * HOUR) },
      now,
      24 * HOUR,
    );
    expect(fresh).toMatchObject({ stale: false, ageHours: 23, staleAfterHours: 24, newestId: 'db-x' });
    const stale = assessStaleness(
      'db',
      { id: 'db-y', createdAt: new Date(now.getTime() - 25.5 * HOUR) },
      now,
      24 * HOUR,
    );
    expect(stale).toMatchObject({ stale: true, ageHours: 25.5 });
  });

  it('calls a database with no good backup stale', () => {
    expect(assessStaleness('db', undefined, now, 24 * HOUR)).toMatchObject({
      stale: true,
      ageHours: null,
      newestId: null,
    });
  });
});

describe('assessFreeSpace', () => {
  it('flags less than 20 % free and not 20 % or more', () => {
    expect(assessFreeSpace({ totalBytes: 1000, freeBytes: 199 }, 0.2)).toMatchObject({
      low: true,
      freeRatio: 0.199,
    });
    expect(assessFreeSpace({ totalBytes: 1000, freeBytes: 200 }, 0.2).low).toBe(false);
  });
});

describe('watchedDatabases', () => {
  it('watches the configured databases, or every stored one when none is configured', () => {
    expect(watchedDatabases(['b', 'a'], ['c'])).toEqual(['b', 'a']);
    expect(watchedDatabases([], ['c', 'a', 'c'])).toEqual(['a', 'c']);
  });
});
