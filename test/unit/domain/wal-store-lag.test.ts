import { describe, expect, it } from 'vitest';
import { storeWalLag } from '../../../lib/domain/wal-store-lag.js';

const s3 = { role: 'secondary', url: 's3://bucket/wal' } as const;
const MB = 1024 * 1024;

describe("a store's newest WAL segment against the server's last archived", () => {
  it('is fine when the store holds the last archived segment, or the segment of the last .backup file', () => {
    expect(storeWalLag(s3, () => '000000010000000000000007', '000000010000000000000007', MB)).toMatchObject({
      ok: true,
      segmentsBehind: 0,
    });
    expect(
      storeWalLag(s3, () => '000000010000000000000007', '000000010000000000000007.00000028.backup', MB).ok,
    ).toBe(true);
  });

  it('counts the segments a store lacks, across a log boundary, and names the store', () => {
    const lag = storeWalLag(s3, () => '0000000100000000000000FE', '000000010000000100000002', 16 * MB);
    expect(lag).toMatchObject({ ok: false, segmentsBehind: 4, newestSegment: '0000000100000000000000FE' });
    expect(lag.detail).toContain('secondary store s3://bucket/wal');
    expect(lag.detail).toContain('4 segment(s) behind');
  });

  it('is a problem when the store holds nothing of the timeline the server archives on', () => {
    const lag = storeWalLag(
      s3,
      (tl) => (tl === 1 ? '000000010000000000000009' : undefined),
      '000000020000000000000009',
      MB,
    );
    expect(lag).toMatchObject({ ok: false, segmentsBehind: null });
    expect(lag.detail).toContain('holds no segment of timeline 2');
  });

  it('has nothing to compare with before the first segment is archived, or after a history file', () => {
    expect(storeWalLag(s3, () => undefined, undefined, MB).ok).toBe(true);
    expect(storeWalLag(s3, () => '000000020000000000000003', '00000002.history', MB)).toMatchObject({
      ok: true,
      newestSegment: '000000020000000000000003',
    });
  });
});
