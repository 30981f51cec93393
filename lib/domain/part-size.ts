/**
 * Multipart part sizes that grow with the stream, so a dump of unknown length fits S3's
 * 10,000-part limit up to the 5 TiB object limit while small dumps keep small parts
 * (little memory). Parts double every 1,000, from 8 MiB: 10,000 parts hold ~8 TiB and
 * the largest part is 4 GiB, under S3's 5 GiB part limit.
 */
export const MiB = 1024 * 1024;
export const MAX_PARTS = 10_000;
export const MIN_PART_BYTES = 5 * MiB;
export const MAX_PART_BYTES = 5 * 1024 * MiB;
export const FIRST_PART_BYTES = 8 * MiB;
const PARTS_PER_STEP = 1_000;

/** Size of part `partNumber` (1-based). Only the last part of an upload may be shorter. */
export function partSizeFor(partNumber: number): number {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
    throw new RangeError(`part number must be 1..${MAX_PARTS}, got ${partNumber}`);
  }
  return FIRST_PART_BYTES * 2 ** Math.floor((partNumber - 1) / PARTS_PER_STEP);
}

/** How many parts a stream of `totalBytes` takes under {@link partSizeFor}. */
export function partsNeeded(totalBytes: number): number {
  let remaining = totalBytes;
  let part = 0;
  do {
    part += 1;
    if (part > MAX_PARTS) return Number.POSITIVE_INFINITY;
    remaining -= partSizeFor(part);
  } while (remaining > 0);
  return part;
}
