import type { Spawn } from '../platform/processes.js';
import { startZstd } from './zstd.js';

/**
 * Compresses or decompresses a small buffer (a backup_manifest, a history file) with zstd, the
 * archive's codec, in memory. For objects of megabytes at most: streams go through the pipes.
 */
export async function zstdBuffer(
  data: Uint8Array,
  mode: 'compress' | 'decompress',
  env: NodeJS.ProcessEnv,
  spawn?: Spawn,
): Promise<Buffer> {
  const child = startZstd(mode === 'compress' ? { level: 3, threads: 1 } : 'decompress', {
    env,
    ...(spawn ? { spawn } : {}),
  });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => chunks.push(d));
  child.stdin?.end(data);
  const exit = await child.exited;
  if (exit.code !== 0 || exit.spawnError) {
    throw new Error(
      `zstd could not ${mode} the object: ${exit.spawnError?.message ?? (exit.stderr || `exit code ${exit.code}`)}`,
    );
  }
  return Buffer.concat(chunks);
}
