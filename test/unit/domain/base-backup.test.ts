import { describe, expect, it } from 'vitest';
import {
  type BaseManifest,
  chooseBaseBackup,
  parseBackupLabel,
  segmentsBetween,
  walRangesOf,
} from '../../../lib/domain/base-backup.js';
import { parseLsn } from '../../../lib/domain/wal-names.js';

function base(id: string, stopTime: string, stopLsn = '0/5000000'): BaseManifest {
  return { id, stopTime, stopLsn } as BaseManifest;
}

describe('base backups', () => {
  it('read their start from backup_label and their end from backup_manifest', () => {
    const label = parseBackupLabel(
      'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 21:25:00 UTC\nLABEL: pgbp\nSTART TIMELINE: 1\n',
    );
    expect(label).toMatchObject({ startLsn: 0x2000028n, startWal: '000000010000000000000002', timeline: 1 });
    expect(parseBackupLabel('nothing here')).toBeUndefined();
    expect(
      walRangesOf('{"WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }]}'),
    ).toEqual([{ timeline: 1, startLsn: 0x2000028n, endLsn: 0x2000100n }]);
    expect(walRangesOf('not json')).toBeUndefined();
  });

  it('need the segments from the start to the one holding the byte before the stop', () => {
    expect(segmentsBetween(0x2000028n, 0x2000100n, 1)).toEqual(['000000010000000000000002']);
    expect(segmentsBetween(0x2000028n, 0x4000000n, 1)).toEqual([
      '000000010000000000000002',
      '000000010000000000000003',
    ]);
    expect(segmentsBetween(0xfe000028n, 0x1_00000100n, 2)).toEqual([
      '0000000200000000000000FE',
      '0000000200000000000000FF',
      '000000020000000100000000',
    ]);
  });

  it('recover from the newest base backup that ended before a time or LSN target, and refuse an earlier target', () => {
    const bases = [
      base('20261110T000000Z', '2026-11-10T00:05:00.000Z', '0/3000000'),
      base('20261117T000000Z', '2026-11-17T00:05:00.000Z', '0/9000000'),
    ];
    const at = (iso: string) => chooseBaseBackup(bases, { kind: 'time', time: new Date(iso) });
    expect(at('2026-11-20T00:00:00Z')).toMatchObject({ ok: true, base: { id: '20261117T000000Z' } });
    expect(at('2026-11-15T00:00:00Z')).toMatchObject({ ok: true, base: { id: '20261110T000000Z' } });
    expect(at('2026-11-09T00:00:00Z')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/before the oldest base backup 20261110T000000Z/),
    });
    expect(chooseBaseBackup(bases, { kind: 'lsn', lsn: parseLsn('0/8000000') as bigint })).toMatchObject({
      base: { id: '20261110T000000Z' },
    });
    expect(chooseBaseBackup(bases, { kind: 'latest' })).toMatchObject({ base: { id: '20261117T000000Z' } });
    expect(chooseBaseBackup([], { kind: 'latest' })).toMatchObject({ ok: false });
  });
});
