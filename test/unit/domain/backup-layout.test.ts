import { describe, expect, it } from 'vitest';
import {
  backupIdFor,
  classifyTier,
  keysFor,
  parseBackupId,
  parseKey,
} from '../../../lib/domain/backup-layout.js';

describe('classifyTier', () => {
  it('makes 1 January yearly, the 1st of other months monthly, any other day daily', () => {
    expect(classifyTier(new Date('2026-01-01T00:00:00Z'))).toBe('yearly');
    expect(classifyTier(new Date('2026-01-01T23:59:59Z'))).toBe('yearly');
    expect(classifyTier(new Date('2026-03-01T02:00:00Z'))).toBe('monthly');
    expect(classifyTier(new Date('2026-12-01T00:00:00Z'))).toBe('monthly');
    expect(classifyTier(new Date('2026-01-02T00:00:00Z'))).toBe('daily');
    expect(classifyTier(new Date('2026-02-28T12:00:00Z'))).toBe('daily');
  });

  it('uses the UTC date, not the local one, at month and year boundaries', () => {
    // 31 December 23:30 in New York is already 1 January in UTC.
    expect(classifyTier(new Date('2025-12-31T23:30:00-05:00'))).toBe('yearly');
    // 1 March 00:30 in Istanbul is still 28 February in UTC.
    expect(classifyTier(new Date('2026-03-01T00:30:00+03:00'))).toBe('daily');
    expect(classifyTier(new Date('2024-02-29T23:59:59Z'))).toBe('daily');
    expect(classifyTier(new Date('2024-03-01T00:00:00Z'))).toBe('monthly');
  });
});

describe('backup ids and keys', () => {
  it('names a backup after its database and UTC second', () => {
    expect(backupIdFor('global_remit', new Date('2026-06-20T15:04:05.678Z'))).toBe(
      'global_remit-20260620T150405Z',
    );
  });

  it('parses an id back to its database and time, hyphens in the name included', () => {
    expect(parseBackupId('app-db-20260620T150405Z')).toEqual({
      database: 'app-db',
      createdAt: new Date('2026-06-20T15:04:05Z'),
    });
  });

  it.each([
    'nodate',
    'db-20260620T150405',
    'db-20261320T000000Z',
    'db-20260230T000000Z',
    '-20260620T150405Z',
    'a/b-20260620T150405Z',
  ])('rejects the malformed id %s', (id) => {
    expect(parseBackupId(id)).toBeUndefined();
  });

  it('lays keys out by database and UTC date under the prefix', () => {
    expect(keysFor('backups/', 'app-20260101T020000Z')).toEqual({
      dump: 'backups/app/2026/01/01/app-20260101T020000Z.dump',
      manifest: 'backups/app/2026/01/01/app-20260101T020000Z.manifest.json',
      verify: 'backups/app/2026/01/01/app-20260101T020000Z.verify.json',
      globals: 'backups/app/2026/01/01/app-20260101T020000Z.globals.sql',
      globalsManifest: 'backups/app/2026/01/01/app-20260101T020000Z.globals.json',
    });
    expect(keysFor('', 'app-20261231T235959Z').dump).toBe('app/2026/12/31/app-20261231T235959Z.dump');
  });

  it('recognises its own keys and ignores anything else', () => {
    const keys = keysFor('p', 'app-20260101T020000Z');
    expect(parseKey('p', keys.dump)).toEqual({
      backupId: 'app-20260101T020000Z',
      database: 'app',
      kind: 'dump',
    });
    expect(parseKey('p', keys.manifest)?.kind).toBe('manifest');
    expect(parseKey('p', keys.globals)?.kind).toBe('globals');
    expect(parseKey('p', keys.globalsManifest)).toEqual({
      backupId: 'app-20260101T020000Z',
      database: 'app',
      kind: 'globalsManifest',
    });
    expect(parseKey('p', 'p/app/2026/01/02/app-20260101T020000Z.dump')).toBeUndefined();
    expect(parseKey('p', 'p/app/notes.txt')).toBeUndefined();
    expect(parseKey('other', keys.dump)).toBeUndefined();
  });
});
