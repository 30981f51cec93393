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
