import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readWalFile } from '../../../lib/wal/wal-read.js';
import { tempDir } from '../../support/temp.js';
import { walFileBytes } from '../../support/wal-bytes.js';

const realZstd = execFileSync('sh', ['-c', 'command -v zstd'], { encoding: 'utf8' }).trim();

function dir(): string {
  return tempDir('pgbp-wal-read-');
}

describe('reading a WAL file for a push', () => {
  it('gives the digest, the first bytes, the compressed form and the cksum of the same bytes', async () => {
    const bytes = walFileBytes();
    const path = join(dir(), 'file');
    writeFileSync(path, bytes);
    const read = await readWalFile(path, { level: 1, env: process.env, check: true });
    expect(read.bytes).toBe(bytes.length);
    expect(read.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(read.head.equals(bytes.subarray(0, read.head.length))).toBe(true);
    expect(read.head.length).toBe(40);
    expect(
      execFileSync('zstd', ['-d', '-c', '-q'], { input: read.compressed, maxBuffer: 1 << 26 }).equals(bytes),
    ).toBe(true);
    const [crc, size] = execFileSync('cksum', [path], { encoding: 'utf8' }).split(' ');
    expect(read.check).toBe(`${crc}-${size}`);
  });

  it('reads an empty or short file whole, and leaves the cksum out unless asked', async () => {
    const path = join(dir(), '00000002.history');
    writeFileSync(path, '1\t0/3000000\tno recovery target specified\n');
    const read = await readWalFile(path, { level: 1, env: process.env });
    expect(read.head.toString()).toBe('1\t0/3000000\tno recovery target specified\n'.slice(0, 40));
    expect(read.check).toBeUndefined();
    expect(
      execFileSync('zstd', ['-d', '-c', '-q'], { input: read.compressed, maxBuffer: 1 << 26 }).toString(),
    ).toContain('no recovery');
    const empty = join(dir(), 'empty');
    writeFileSync(empty, '');
    expect((await readWalFile(empty, { level: 1, env: process.env })).bytes).toBe(0);
  });

  it('fails when the file cannot be read or zstd fails; without cksum it only leaves the check out', async () => {
    const d = dir();
    await expect(readWalFile(join(d, 'missing'), { level: 1, env: process.env })).rejects.toThrow(/ENOENT/);
    const path = join(d, 'file');
    const bytes = walFileBytes();
    writeFileSync(path, bytes);
    // A PATH of one zstd and no cksum.
    const bin = join(d, 'bin');
    mkdirSync(bin);
    const zstd = join(bin, 'zstd');
    writeFileSync(zstd, '#!/bin/sh\necho "zstd: out of memory" >&2\nexit 1\n');
    chmodSync(zstd, 0o755);
    const env = { ...process.env, PATH: bin };
    await expect(readWalFile(path, { level: 1, env, check: true })).rejects.toThrow(/zstd.*out of memory/);
    writeFileSync(zstd, `#!/bin/sh\nexec ${realZstd} "$@"\n`);
    const read = await readWalFile(path, { level: 1, env, check: true });
    expect(read.check).toBeUndefined();
    expect(read.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });
});
