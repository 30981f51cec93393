import { randomBytes } from 'node:crypto';

/** 3 MiB and a bit, as a WAL file to read: several reads, the last one short; half random, half compressible. */
export function walFileBytes(): Buffer {
  return Buffer.concat([randomBytes(1_600_000), Buffer.alloc(1_600_000, 7), randomBytes(12_345)]);
}

/** A 1 MiB segment: the long page header of a PostgreSQL 15 cluster, then random bytes. */
export function segmentBytes(): Buffer {
  const size = 1 << 20;
  const bytes = randomBytes(size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 40);
  view.setUint16(0, 0xd110, true);
  view.setUint16(2, 0x0002, true);
  view.setUint32(4, 1, true);
  view.setBigUint64(24, 7446098012345678901n, true);
  view.setUint32(32, size, true);
  view.setUint32(36, 8192, true);
  return bytes;
}
