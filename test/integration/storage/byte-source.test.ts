import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { type ByteSource, childOutput, sourceOf } from '../../../lib/storage/byte-source.js';

const dir = mkdtempSync(join(tmpdir(), 'pgbp-byte-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Fills buffers of the given sizes in turn (cycling) until a fill comes back short. */
async function drain(source: ByteSource, sizes: readonly number[], pause = 0): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let i = 0; ; i += 1) {
    const into = Buffer.alloc(sizes[i % sizes.length] as number);
    const filled = await source.fill(into);
    pieces.push(into.subarray(0, filled));
    if (filled < into.length) return Buffer.concat(pieces);
    if (pause) await delay(pause);
  }
}

async function catOf(data: Buffer): Promise<ByteSource> {
  const file = join(dir, `${randomBytes(4).toString('hex')}.bin`);
  writeFileSync(file, data);
  const { childEnd, source } = await childOutput();
  spawn('cat', [file], { stdio: ['ignore', childEnd, 'inherit'] });
  childEnd.destroy();
  return source;
}

describe('childOutput', () => {
  it("hands over a child's output byte for byte, in fills of any size", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const source = await catOf(data);
    expect((await drain(source, [1, 4096, 1_000_003, 8 * 1024 * 1024])).equals(data)).toBe(true);
    expect(await source.fill(Buffer.alloc(10))).toBe(0);
  });

  it('keeps what arrives while no fill waits, for a reader slower than the child', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const source = await catOf(data);
    await delay(200); // the child has written all it can before the first fill
    expect((await drain(source, [300_000], 20)).equals(data)).toBe(true);
  });

  it('ends a fill short, with what it holds, when the child exits', async () => {
    const source = await catOf(Buffer.from('twelve bytes'));
    const into = Buffer.alloc(100);
    expect(await source.fill(into)).toBe(12);
    expect(into.subarray(0, 12).toString()).toBe('twelve bytes');
  });

  it('refuses a temporary directory whose path is too long for a socket, creating nothing', async () => {
    const long = join(dir, 'd'.repeat(100));
    mkdirSync(long);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = long;
    try {
      await expect(childOutput()).rejects.toThrow(`the temporary directory ${long} is too long a path`);
    } finally {
      process.env.TMPDIR = saved;
      if (saved === undefined) delete process.env.TMPDIR;
    }
    expect(readdirSync(long)).toEqual([]);
  });

  it('rejects a waiting fill with the error it is destroyed with', async () => {
    const { childEnd, source } = await childOutput();
    const child = spawn('sleep', ['5'], { stdio: ['ignore', childEnd, 'ignore'] });
    childEnd.destroy();
    const waiting = source.fill(Buffer.alloc(10));
    source.destroy(new Error('pg_dump exited with code 1'));
    await expect(waiting).rejects.toThrow('pg_dump exited with code 1');
    await expect(source.fill(Buffer.alloc(10))).rejects.toThrow('pg_dump exited with code 1');
    child.kill();
  });
});

describe('sourceOf', () => {
  it("fills buffers across a stream's chunk boundaries and ends short", async () => {
    const data = randomBytes(100_000);
    const source = sourceOf(
      Readable.from([data.subarray(0, 10), data.subarray(10, 70_000), data.subarray(70_000)]),
    );
    expect((await drain(source, [7, 33_333])).equals(data)).toBe(true);
  });

  it("rejects with the stream's own error", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('source died'));
      },
    });
    await expect(sourceOf(failing).fill(Buffer.alloc(10))).rejects.toThrow('source died');
  });
});
