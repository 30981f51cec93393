import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../../lib/domain/manifest.js';

const valid = {
  manifestVersion: 1,
  id: 'app-20260301T020000Z',
  database: 'app',
  tier: 'monthly',
  createdAt: '2026-03-01T02:00:00.000Z',
  finishedAt: '2026-03-01T02:03:00.000Z',
  durationMs: 180000,
  format: 'custom',
  compression: { codec: 'zstd', level: 1 },
  sizeBytes: 1234,
  sha256: 'a'.repeat(64),
  serverVersion: '15.20',
  pgDumpVersion: '15.20',
  key: 'app/2026/03/01/app-20260301T020000Z.dump',
  storageClass: 'STANDARD',
  encryption: { type: 'SSE-KMS', kmsKeyId: 'alias/pg-backup-pipeline-prod' },
  tables: [{ schema: 'core', name: 'transactions', kind: 'partitioned table', rowEstimate: -1 }],
};

describe('manifest schema', () => {
  it('accepts a complete manifest', () => {
    expect(parseManifest(valid).id).toBe('app-20260301T020000Z');
  });

  it.each([
    ['sha256', { sha256: 'xyz' }],
    ['tier', { tier: 'weekly' }],
    ['id', { id: 'app-2026' }],
    ['compression', { compression: { codec: 'lz4', level: 1 } }],
    ['sizeBytes', { sizeBytes: -1 }],
  ])('rejects a bad %s and names it', (field, change) => {
    expect(() => parseManifest({ ...valid, ...change })).toThrow(field);
  });

  it('rejects unknown fields, so a manifest of another version is not misread', () => {
    expect(() => parseManifest({ ...valid, password: 'x' })).toThrow(/unrecognized/i);
  });
});
