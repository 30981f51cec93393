import { describe, expect, it } from 'vitest';
import { ownFailure, startChild, startChildInto } from '../../../lib/platform/processes.js';

describe('a child writing into another child', () => {
  it('hands its whole output over without this process reading it, and the reader sees the end', async () => {
    const reader = startChild('sh', ['-c', 'wc -c'], { env: process.env, stdin: 'pipe', stdout: 'pipe' });
    let counted = '';
    reader.stdout?.setEncoding('utf8').on('data', (d: string) => {
      counted += d;
    });
    const writer = startChildInto(reader, 'head', ['-c', '3000000', '/dev/zero'], { env: process.env });
    const [written, read] = await Promise.all([writer.exited, reader.exited]);
    expect([written.code, read.code]).toEqual([0, 0]);
    expect(Number(counted.trim())).toBe(3_000_000);
  });

  it('names the reader that failed, not the writer it cut off', async () => {
    const reader = startChild('sh', ['-c', 'head -c 1000 >/dev/null; echo "disk full" >&2; exit 3'], {
      env: process.env,
      stdin: 'pipe',
    });
    // Writes until its output is gone, and says so as a writer to a socket does.
    const writer = startChildInto(reader, 'cat', ['/dev/zero'], { env: process.env });
    const exits = await Promise.all([writer.exited, reader.exited]);
    expect(exits[0].code).not.toBe(0);
    expect(ownFailure(exits)).toMatchObject({ tool: 'sh', code: 3, stderr: 'disk full' });
  });

  it('takes a write reset by the reader for being cut off, and a read reset by a server for a failure', async () => {
    const exit = (stderr: string) => ({ tool: 'pg_basebackup', code: 1, signal: null, stderr });
    const zstd = { tool: 'zstd', code: 1, signal: null, stderr: 'zstd: error' };
    expect(
      ownFailure([exit('pg_basebackup: error: could not write to file "-": Connection reset by peer'), zstd]),
    ).toBe(zstd);
    const server = exit('pg_basebackup: error: could not receive data from server: Connection reset by peer');
    expect(ownFailure([server, zstd])).toBe(server);
  });
});
