import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { claimDegradedAlerts, releaseDegradedAlert } from '../../../lib/wal/degraded-alerts.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgbp-degraded-'));
  dirs.push(d);
  return d;
}

const s3 = { role: 'secondary', url: 's3://bucket/wal', reason: 'S3 unreachable' } as const;
const nas = { role: 'primary', url: 'file:///nas', reason: 'ENOSPC' } as const;
const at = (minutes: number) => new Date(Date.UTC(2026, 11, 3, 12, 0) + minutes * 60_000);

describe('the wal-archive-degraded alert', () => {
  it('is due once per store per hour, however many segments fail in between', async () => {
    const data = dataDir();
    expect(await claimDegradedAlerts(data, [s3], at(0))).toEqual([s3]);
    expect(await claimDegradedAlerts(data, [s3], at(1))).toEqual([]);
    expect(await claimDegradedAlerts(data, [s3, nas], at(59))).toEqual([nas]);
    expect(await claimDegradedAlerts(data, [s3, nas], at(61))).toEqual([s3]);
  });

  it('is due at once after a clock set back, and again after an alert that was not delivered', async () => {
    const data = dataDir();
    expect(await claimDegradedAlerts(data, [s3], at(120))).toEqual([s3]);
    expect(await claimDegradedAlerts(data, [s3], at(10))).toEqual([s3]);
    await releaseDegradedAlert(data, s3);
    expect(await claimDegradedAlerts(data, [s3], at(11))).toEqual([s3]);
  });

  it('is claimed by one of several pushes at the same moment', async () => {
    const data = dataDir();
    const claims = await Promise.all(Array.from({ length: 8 }, () => claimDegradedAlerts(data, [s3], at(0))));
    expect(claims.flat()).toEqual([s3]);
  });
});
