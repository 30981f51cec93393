import { describe, expect, it } from 'vitest';
import { readControlSystemIdentifier, readSegmentIdentity } from '../../../lib/postgres/wal-headers.js';

/** The first page of a segment as PostgreSQL 15 writes it: XLogLongPageHeaderData. */
function firstPage(systemIdentifier: bigint, segmentBytes = 16 << 20, info = 0x0002): Uint8Array {
  const page = new Uint8Array(8192);
  const view = new DataView(page.buffer);
  view.setUint16(0, 0xd110, true);
  view.setUint16(2, info, true);
  view.setUint32(4, 3, true);
  view.setBigUint64(8, 0x2000000n, true);
  view.setBigUint64(24, systemIdentifier, true);
  view.setUint32(32, segmentBytes, true);
  view.setUint32(36, 8192, true);
  return page;
}

describe('reading which cluster a WAL file belongs to', () => {
  it("reads the system identifier, timeline, segment size and version of a segment's first page", () => {
    expect(readSegmentIdentity(firstPage(7446098012345678901n))).toEqual({
      systemIdentifier: '7446098012345678901',
      major: 15,
      timeline: 3,
      segmentBytes: 16 << 20,
      pageBytes: 8192,
    });
  });

  it('refuses what is not the first page of a segment', () => {
    expect(readSegmentIdentity(firstPage(1n, 16 << 20, 0x0000))).toBeUndefined();
    expect(readSegmentIdentity(firstPage(1n, 3_000_000))).toBeUndefined();
    expect(readSegmentIdentity(firstPage(0n))).toBeUndefined();
    expect(readSegmentIdentity(new Uint8Array(8192))).toBeUndefined();
    expect(readSegmentIdentity(new Uint8Array(10))).toBeUndefined();
  });

  it('reads the system identifier at the start of pg_control', () => {
    const control = new Uint8Array(8192);
    new DataView(control.buffer).setBigUint64(0, 7446098012345678901n, true);
    expect(readControlSystemIdentifier(control)).toBe('7446098012345678901');
    expect(readControlSystemIdentifier(new Uint8Array(4))).toBeUndefined();
  });
});
