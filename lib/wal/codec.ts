import { spawn } from 'node:child_process';

/**
 * zstd over whole WAL files in memory (16 MiB each by default): one child per file, fed from a
 * buffer and read into one, so a push or a fetch is one read of the file and one write of
 * the result. zstd's frame carries its own checksum, and the caller checks the SHA-256 of the
 * original bytes besides.
 */
function run(args: readonly string[], input: Uint8Array, env: NodeJS.ProcessEnv): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('zstd', [...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000);
    });
    child.stdin.on('error', () => {
      // zstd exited before reading everything: its exit status says why.
    });
    child.on('error', (error) => reject(new Error(`cannot run zstd: ${error.message}`, { cause: error })));
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise(Buffer.concat(chunks));
      else reject(new Error(`zstd ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
    });
    child.stdin.end(input);
  });
}

/** Compresses with zstd at `level` on one thread (the server shares the host's cores). */
export function compress(input: Uint8Array, level: number, env: NodeJS.ProcessEnv = process.env) {
  return run([`-${level}`, '--single-thread', '-q', '-c'], input, env);
}

/** Decompresses a zstd frame; rejects on a damaged or truncated one. */
export function decompress(input: Uint8Array, env: NodeJS.ProcessEnv = process.env) {
  return run(['-d', '-q', '-c'], input, env);
}
