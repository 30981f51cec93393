import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SegmentEncoder } from '../../../lib/wal/segment-encoder.js';
import { tempDir } from '../../support/temp.js';
import { walFileBytes } from '../../support/wal-bytes.js';

const realZstd = execFileSync('sh', ['-c', 'command -v zstd'], { encoding: 'utf8' }).trim();
const encoders: SegmentEncoder[] = [];
afterEach(async () => {
  for (const e of encoders.splice(0)) await e.close();
});

function dir(): string {
  return tempDir('pgbp-segment-encoder-');
}

/** A folder with the pusher's records folder (`scratch`) and one WAL file (`path`, of `bytes`) in it. */
function oneFile(): {
  readonly d: string;
  readonly scratch: string;
  readonly path: string;
  readonly bytes: Buffer;
} {
  const d = dir();
  const scratch = join(d, 'records');
  mkdirSync(scratch);
  const path = join(d, 'file');
  const bytes = walFileBytes();
  writeFileSync(path, bytes);
  return { d, scratch, path, bytes };
}

function encoder(env: NodeJS.ProcessEnv, folder: string): SegmentEncoder {
  const e = new SegmentEncoder(env, folder);
  encoders.push(e);
  return e;
}

describe('reading segments for the pusher from a private copy', () => {
  it('gives the digest, the first bytes, the compressed form and the cksum of the same bytes, and leaves no file behind', async () => {
    const d = dir();
    const scratch = join(d, 'records');
    mkdirSync(scratch);
    const e = encoder(process.env, scratch);
    // One shell and one copy answer file after file, a shorter one after a longer one too.
    for (let i = 0; i < 3; i++) {
      const bytes = i === 1 ? walFileBytes().subarray(0, 1_000_000) : walFileBytes();
      const path = join(d, `file${i}`);
      writeFileSync(path, bytes);
      const read = await e.read(path, 1);
      expect(read).toBeDefined();
      expect(read?.bytes).toBe(bytes.length);
      expect(read?.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(read?.head.equals(bytes.subarray(0, 40))).toBe(true);
      expect(
        execFileSync('zstd', ['-d', '-c', '-q'], { input: read?.compressed, maxBuffer: 1 << 26 }).equals(
          bytes,
        ),
      ).toBe(true);
      const [crc, size] = execFileSync('cksum', [path], { encoding: 'utf8' }).split(' ');
      expect(read?.check).toBe(`${crc}-${size}`);
    }
    // Idle, its copy holds nothing that the kernel would write out to disk.
    const [copy] = readdirSync(scratch);
    expect(copy).toBeDefined();
    expect(statSync(join(scratch, copy as string)).size).toBe(walFileBytes().length);
    e.emptyCopy();
    expect(statSync(join(scratch, copy as string)).size).toBe(0);
    await e.close();
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('fails when zstd fails, leaves the check out without cksum, and removes its copies either way', async () => {
    const { d, scratch, path, bytes } = oneFile();
    // A PATH of one zstd and no cksum.
    const bin = join(d, 'bin');
    mkdirSync(bin);
    const zstd = join(bin, 'zstd');
    writeFileSync(zstd, '#!/bin/sh\necho "zstd: out of memory" >&2\nexit 1\n');
    chmodSync(zstd, 0o755);
    const env = { ...process.env, PATH: bin };
    const failing = encoder(env, scratch);
    await expect(failing.read(path, 1)).rejects.toThrow(/zstd could not compress/);
    await failing.close();
    expect(readdirSync(scratch)).toEqual([]);
    writeFileSync(zstd, `#!/bin/sh\nexec ${realZstd} "$@"\n`);
    const unchecked = encoder(env, scratch);
    const read = await unchecked.read(path, 1);
    expect(read?.check).toBeUndefined();
    expect(read?.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    await unchecked.close();
    expect(readdirSync(scratch)).toEqual([]);
    await expect(encoder(process.env, scratch).read(join(d, 'missing'), 1)).rejects.toThrow(/ENOENT/);
  });

  it("does not hold a segment up on a shell that gets no CPU: past its deadline, a shell at the pusher's niceness encodes it", async () => {
    const { d, scratch, path, bytes } = oneFile();
    // A chrt whose shell never answers, as one starved on a host whose cores are never idle: the
    // read finishes within the test's time only because the encoder gives up on it.
    const bin = join(d, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'chrt'), '#!/bin/sh\nexec sleep 30\n');
    chmodSync(join(bin, 'chrt'), 0o755);
    const e = encoder({ ...process.env, PATH: `${bin}:${process.env.PATH}` }, scratch);
    const read = await e.read(path, 1);
    expect(read?.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const [crc, size] = execFileSync('cksum', [path], { encoding: 'utf8' }).split(' ');
    expect(read?.check).toBe(`${crc}-${size}`);
    // The next one goes to that shell too (the fake chrt's would never answer).
    expect((await e.read(path, 1))?.check).toBe(`${crc}-${size}`);
    await e.close();
    expect(readdirSync(scratch)).toEqual([]);
  });
});
