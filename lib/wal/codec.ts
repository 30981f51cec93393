import { describeExit, exitedCleanly } from '../platform/processes.js';
import { startZstd } from '../storage/zstd.js';

/**
 * zstd over whole WAL files in memory (16 MiB each by default): one child per file (the one
 * zstd of lib/storage/zstd.ts), fed from a buffer and read into one, so a push or a fetch is one
 * read of the file and one write of the result. zstd's frame carries its own checksum, and the
 * caller checks the SHA-256 of the original bytes besides.
 */
async function run(
  mode: Parameters<typeof startZstd>[0],
  input: Uint8Array,
  env: NodeJS.ProcessEnv,
): Promise<Buffer> {
  const child = startZstd(mode, { env });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  child.stdin?.end(input);
  const exit = await child.exited;
  if (!exitedCleanly(exit)) throw new Error(describeExit(exit));
  return Buffer.concat(chunks);
}

/** Compresses with zstd at `level` on one thread (the server shares the host's cores). */
export function compress(input: Uint8Array, level: number, env: NodeJS.ProcessEnv): Promise<Buffer> {
  return run({ level, threads: 1 }, input, env);
}

/** Decompresses a zstd frame; rejects on a damaged or truncated one. */
export function decompress(input: Uint8Array, env: NodeJS.ProcessEnv): Promise<Buffer> {
  return run('decompress', input, env);
}
