/**
 * The prefetcher's decoding shell (lib/wal/segment-decoder.ts): real zstd and cksum, one shell
 * for many segments, and a failure that says so and leaves the next segment decodable; and what
 * spoolStored (lib/wal/spool-stored.ts) makes of its output: only bytes of the archive's recorded
 * SHA-256 are ever spooled (zstd's own frame checksum is not verified there).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cksumOf } from '../../../lib/wal/cksum.js';
import { SegmentDecoder } from '../../../lib/wal/segment-decoder.js';
import { entryName, sha256Of } from '../../../lib/wal/spool.js';
import { spoolStored } from '../../../lib/wal/spool-stored.js';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'pgbp-decoder-'));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function compressed(name: string, bytes: Buffer): string {
  const plain = join(work, `${name}.plain`);
  writeFileSync(plain, bytes);
  execFileSync('zstd', ['-q', '-f', plain, '-o', join(work, `${name}.zst`)]);
  return join(work, `${name}.zst`);
}

describe('the decoding shell', () => {
  it('decompresses each file into its output and gives the output’s cksum, one shell for all', async () => {
    const decoder = new SegmentDecoder(process.env);
    try {
      for (const i of [1, 2, 3]) {
        const bytes = randomBytes(64 * 1024 * i);
        const out = join(work, `out-${i}`);
        const { check } = await decoder.decode(compressed(`seg-${i}`, bytes), out);
        expect(readFileSync(out).equals(bytes)).toBe(true);
        expect(check).toBe(await cksumOf(bytes, process.env));
      }
    } finally {
      await decoder.close();
    }
  });

  it('throws for a file zstd cannot decompress, and decodes the next one', async () => {
    const decoder = new SegmentDecoder(process.env);
    try {
      const damaged = join(work, 'damaged.zst');
      const good = compressed('good', randomBytes(4096));
      // A frame cut short: what a store that lost the object's end would hold.
      writeFileSync(damaged, readFileSync(good).subarray(0, 2000));
      await expect(decoder.decode(damaged, join(work, 'out-damaged'))).rejects.toThrow(
        /could not decompress/,
      );
      await expect(decoder.decode(join(work, 'missing.zst'), join(work, 'out-missing'))).rejects.toThrow();
      const { check } = await decoder.decode(good, join(work, 'out-good'));
      expect(check).toBe(await cksumOf(readFileSync(join(work, 'good.plain')), process.env));
    } finally {
      await decoder.close();
    }
  });

  it('never spools bytes that differ from the recorded SHA-256, though zstd decodes them', async () => {
    const decoder = new SegmentDecoder(process.env);
    try {
      const bytes = randomBytes(64 * 1024);
      const stored = readFileSync(compressed('flipped', bytes));
      // One bit off inside the frame's data (random bytes are stored as they are): zstd decodes
      // it, without verifying its own checksum, to bytes that are not the segment's.
      stored[stored.length - 100] = (stored[stored.length - 100] ?? 0) ^ 0x01;
      const dir = join(work, 'spool');
      const name = '000000010000000000000007';
      await expect(
        spoolStored(dir, name, sha256Of(bytes), { body: Readable.from([stored]) }, decoder),
      ).rejects.toThrow(
        new RegExp(`${name}: its SHA-256 is [0-9a-f]{64}, the archive recorded ${sha256Of(bytes)}`),
      );
      expect(readdirSync(dir)).toEqual([]);
      // The same segment, undamaged: spooled under its entry, with the launcher's check.
      await spoolStored(
        dir,
        name,
        sha256Of(bytes),
        { body: Readable.from([readFileSync(join(work, 'flipped.zst'))]) },
        decoder,
      );
      const check = await cksumOf(bytes, process.env);
      expect(readdirSync(dir)).toEqual([entryName(name, sha256Of(bytes), check)]);
      expect(readFileSync(join(dir, entryName(name, sha256Of(bytes), check))).equals(bytes)).toBe(true);
    } finally {
      await decoder.close();
    }
  });

  it('spools nothing from a body that fails before its end, and leaves no temporary file', async () => {
    const decoder = new SegmentDecoder(process.env);
    try {
      const bytes = randomBytes(256 * 1024);
      const stored = readFileSync(compressed('cut', bytes));
      const dir = join(work, 'spool-cut');
      const name = '000000010000000000000008';
      // What a connection reset halfway through the GET, or a body failing the SDK's CRC, gives.
      const body = Readable.from(
        (async function* () {
          yield stored.subarray(0, stored.length >> 1);
          throw new Error('socket hang up');
        })(),
      );
      await expect(spoolStored(dir, name, sha256Of(bytes), { body }, decoder)).rejects.toThrow(
        /socket hang up/,
      );
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      await decoder.close();
    }
  });

  it('refuses a path its line protocol cannot carry', async () => {
    const decoder = new SegmentDecoder(process.env);
    await expect(decoder.decode(join(work, 'a\nb.zst'), join(work, 'out'))).rejects.toThrow(/newline/);
    await decoder.close();
  });
});
