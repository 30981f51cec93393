import { type FileHandle, open } from 'node:fs/promises';
import { exitedCleanly, startChild } from '../platform/processes.js';

/**
 * What coreutils `cksum` says of `bytes` (its CRC and the size, as `<crc>-<size>`), the check the
 * launcher repeats; undefined when cksum is not there or fails (the launcher then leaves the
 * call to the CLI, which verifies the SHA-256).
 */
export async function cksumOf(bytes: Uint8Array, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  try {
    const child = startChild('cksum', [], { env, stdin: 'pipe', stdout: 'pipe' });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stdin?.end(bytes);
    const exit = await child.exited;
    const m = /^([0-9]{1,10}) ([0-9]{1,12})\n$/.exec(out);
    return exitedCleanly(exit) && m && Number(m[2]) === bytes.length ? `${m[1]}-${m[2]}` : undefined;
  } catch {
    return undefined;
  }
}

/** {@link cksumOf} of the file at `path`, which cksum reads itself. */
export async function cksumOfFile(path: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const size = (await fh.stat()).size;
    const child = startChild('cksum', [], { env, stdin: fh.fd, stdout: 'pipe' });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const exit = await child.exited;
    const m = /^([0-9]{1,10}) ([0-9]{1,12})\n$/.exec(out);
    return exitedCleanly(exit) && m && Number(m[2]) === size ? `${m[1]}-${m[2]}` : undefined;
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => {});
  }
}
