import { describe, expect, it } from 'vitest';
import {
  MAX_PART_BYTES,
  MAX_PARTS,
  MIN_PART_BYTES,
  partSizeFor,
  partsNeeded,
} from '../../../lib/domain/part-size.js';

const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

describe('multipart part sizes', () => {
  it.each([
    ['10 GiB', 10 * GiB],
    ['1 TiB', TiB],
    ['5 TiB, the S3 object limit', 5 * TiB],
  ])('fits a %s stream within 10,000 parts', (_label, bytes) => {
    const parts = partsNeeded(bytes);
    expect(parts).toBeLessThanOrEqual(MAX_PARTS);
    let sum = 0;
    for (let p = 1; p <= parts; p += 1) sum += partSizeFor(p);
    expect(sum).toBeGreaterThanOrEqual(bytes);
  });

  it('keeps small dumps in small parts and grows only as the stream does', () => {
    expect(partSizeFor(1)).toBe(8 * 1024 * 1024);
    expect(partsNeeded(1)).toBe(1);
    expect(partsNeeded(100 * 1024 * 1024)).toBe(13);
    for (let p = 2; p <= MAX_PARTS; p += 1) expect(partSizeFor(p)).toBeGreaterThanOrEqual(partSizeFor(p - 1));
  });

  it('never asks for a part outside S3 limits', () => {
    for (let p = 1; p <= MAX_PARTS; p += 1) {
      expect(partSizeFor(p)).toBeGreaterThanOrEqual(MIN_PART_BYTES);
      expect(partSizeFor(p)).toBeLessThanOrEqual(MAX_PART_BYTES);
    }
    expect(() => partSizeFor(MAX_PARTS + 1)).toThrow(RangeError);
  });
});
