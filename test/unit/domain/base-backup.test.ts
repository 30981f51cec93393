import { describe, expect, it } from 'vitest';
import {
  type BaseManifest,
  backupHistoryFileName,
  chooseBaseBackup,
  parseBackupHistory,
  parseBaseManifest,
  segmentsBetween,
  zstdSummarySizes,
} from '../../../lib/domain/base-backup.js';
import { parseLsn } from '../../../lib/domain/wal-names.js';

function base(id: string, stopTime: string, stopLsn = '0/5000000'): BaseManifest {
  return { id, stopTime, stopLsn } as BaseManifest;
}

describe('base backups', () => {
  it('read where they started and stopped from the backup history file the server archived', () => {
    const text =
      'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTOP WAL LOCATION: 0/3000100 (file 000000010000000000000003)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 21:25:00 UTC\nLABEL: pgbp base backup 20261201T212500Z\nSTART TIMELINE: 1\nSTOP TIME: 2026-12-01 21:25:04 UTC\nSTOP TIMELINE: 1\n';
    expect(parseBackupHistory(text)).toEqual({
      startLsn: 0x2000028n,
      startWal: '000000010000000000000002',
      stopLsn: 0x3000100n,
      stopWal: '000000010000000000000003',
      timeline: 1,
      stopTimeline: 1,
      label: 'pgbp base backup 20261201T212500Z',
    });
    // A backup_label (no stop yet) is not a history file.
    expect(
      parseBackupHistory(
        text
          .split('\n')
          .filter((l) => !l.startsWith('STOP'))
          .join('\n'),
      ),
    ).toBeUndefined();
    expect(parseBackupHistory('nothing here')).toBeUndefined();
    expect(backupHistoryFileName(0x2000028n, 1)).toBe('000000010000000000000002.00000028.backup');
    expect(backupHistoryFileName(0x1_2f00_0060n, 3)).toBe('00000003000000010000002F.00000060.backup');
    expect(backupHistoryFileName(0x2000028n, 1, 1024 * 1024)).toBe(
      '000000010000000000000020.00000028.backup',
    );
  });

  it("take the tar stream's size from zstd's summary, in the wording of zstd 1.5 and before", () => {
    expect(
      zstdSummarySizes('/*stdin*\\            : 12.40%   (1073741824 B => 133143986 B, /*stdout*\\) '),
    ).toEqual({
      read: 1073741824,
      written: 133143986,
    });
    expect(zstdSummarySizes('/*stdin*\\ : 12.40%   (1073741824 => 133143986 bytes, /*stdout*\\) ')).toEqual({
      read: 1073741824,
      written: 133143986,
    });
    // At -v zstd rounds (1.00 GiB): not a size to record.
    expect(zstdSummarySizes('/*stdin*\\ : 12.40%   (  1.00 GiB =>  127 MiB, /*stdout*\\) ')).toBeUndefined();
  });

  it('read manifests of version 1, which kept backup_manifest apart, and refuse that field in version 2', () => {
    const v2 = {
      manifestVersion: 2,
      kind: 'base',
      id: '20261201T212500Z',
      cluster: 'main',
      systemIdentifier: '7000000000000000001',
      timeline: 1,
      startLsn: '0/2000028',
      stopLsn: '0/2000100',
      startWal: '000000010000000000000002',
      stopWal: '000000010000000000000002',
      startTime: '2026-12-01T21:25:00Z',
      stopTime: '2026-12-01T21:25:04Z',
      durationMs: 4000,
      serverVersion: '15.8',
      serverMajor: 15,
      walSegmentBytes: 16 * 1024 * 1024,
      key: '~cluster/main/base/20261201T212500Z/base.tar.zst',
      sizeBytes: 3,
      originalBytes: 10,
      sha256: 'a'.repeat(64),
      compression: { codec: 'zstd', level: 1 },
      tablespaces: ['pg_default', 'pg_global'],
      storageClass: 'STANDARD',
      encryption: { type: 'none' },
      walConfirmedAt: '2026-12-01T21:25:05Z',
    };
    const kept = {
      key: '~cluster/main/base/20261201T212500Z/backup_manifest.zst',
      sha256: 'b'.repeat(64),
      sizeBytes: 8,
    };
    expect(parseBaseManifest(v2).id).toBe('20261201T212500Z');
    expect(parseBaseManifest({ ...v2, manifestVersion: 1, backupManifest: kept })).toMatchObject({
      manifestVersion: 1,
      backupManifest: kept,
    });
    expect(() => parseBaseManifest({ ...v2, manifestVersion: 1 })).toThrow();
    expect(() => parseBaseManifest({ ...v2, backupManifest: kept })).toThrow();
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
