import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseWalObjectKey, walObjectKey } from '../../../lib/domain/physical-layout.js';
import {
  formatLsn,
  nextSegmentName,
  parseLsn,
  parseWalFileName,
  segmentName,
  segmentNumber,
  segmentOfLsn,
} from '../../../lib/domain/wal-names.js';

describe('WAL file names', () => {
  it('tells segments, partial, backup and history files apart, and refuses anything else', () => {
    expect(parseWalFileName('000000010000000A000000FE')).toMatchObject({ kind: 'segment', timeline: 1 });
    expect(parseWalFileName('000000020000000A000000FE.partial')).toMatchObject({
      kind: 'partial',
      timeline: 2,
    });
    expect(parseWalFileName('000000010000000000000002.00000028.backup')).toMatchObject({ kind: 'backup' });
    expect(parseWalFileName('0000000A.history')).toEqual({
      name: '0000000A.history',
      kind: 'history',
      timeline: 10,
    });
    for (const bad of [
      '',
      '../etc/passwd',
      '000000010000000a000000fe',
      '00000000.history',
      'RECOVERYHISTORY',
    ])
      expect(parseWalFileName(bad)).toBeUndefined();
  });

  it('counts segments across a log boundary as PostgreSQL does (16 MiB: 256 a log)', () => {
    expect(nextSegmentName('0000000100000000000000FF')).toBe('000000010000000100000000');
    expect(segmentNumber('000000010000000100000000')).toBe(256);
    expect(segmentName(1, 256, 64 * 1024 * 1024)).toBe('000000010000000400000000');
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xff }),
        fc.integer({ min: 0, max: 2 ** 40 - 1 }),
        (tli, segNo) => {
          expect(segmentNumber(segmentName(tli, segNo))).toBe(segNo);
        },
      ),
    );
  });

  it('reads LSNs and finds the segment that holds one', () => {
    const lsn = parseLsn('16/B374D848');
    expect(lsn).toBe(0x16b374d848n);
    expect(formatLsn(lsn as bigint)).toBe('16/B374D848');
    expect(segmentOfLsn(lsn as bigint, 1)).toBe('0000000100000016000000B3');
    expect(parseLsn('16-B3')).toBeUndefined();
  });

  it('keys a WAL object by name and digest, and reads both back', () => {
    const file = parseWalFileName('000000010000000A000000FE');
    const sha = 'ab'.repeat(32);
    const key = walObjectKey('backups', 'main', file as NonNullable<typeof file>, sha);
    expect(key).toBe(`backups/~cluster/main/wal/000000010000000A/000000010000000A000000FE-${sha}.zst`);
    expect(parseWalObjectKey(key)).toEqual({ name: '000000010000000A000000FE', sha256: sha });
  });
});
