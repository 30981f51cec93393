/**
 * The prefetcher's decoding shell (lib/wal/segment-decoder.ts): real zstd and cksum, one shell
 * for many segments, and a failure that says so and leaves the next segment decodable.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cksumOf } from '../../../lib/wal/cksum.js';
import { SegmentDecoder } from '../../../lib/wal/segment-decoder.js';

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
      const bytes = readFileSync(good);
      bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 0xff;
      writeFileSync(damaged, bytes);
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

  it('refuses a path its line protocol cannot carry', async () => {
    const decoder = new SegmentDecoder(process.env);
    await expect(decoder.decode(join(work, 'a\nb.zst'), join(work, 'out'))).rejects.toThrow(/newline/);
    await decoder.close();
  });
});
