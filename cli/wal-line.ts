import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * The command lines of wal-push, wal-fetch, wal-prefetch and wal-push-ahead, read alike by the CLI
 * (cli/commands/wal.ts) and by the fast path that runs before it loads (cli/wal-fast-path.ts):
 * nothing here may import more than Node's own modules.
 */
const OPTIONS = {
  config: { type: 'string' },
  store: { type: 'string' },
  cluster: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export interface WalLine {
  readonly positionals: string[];
  readonly config?: string;
  readonly store?: string;
  readonly cluster?: string;
  readonly json?: boolean;
}

/** Parses a wal-* command's arguments (after its name); throws on an unknown option. */
export function parseWalLine(args: readonly string[]): WalLine {
  const { values, positionals } = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true });
  return { positionals, ...values };
}

/** The options a background prefetcher or pusher is started with: the call's own, the config made absolute. */
function forwarded(line: WalLine, cwd: string): string[] {
  return [
    ...(line.config ? ['--config', resolve(cwd, line.config)] : []),
    ...(line.store ? ['--store', line.store] : []),
    ...(line.cluster ? ['--cluster', line.cluster] : []),
  ];
}

/**
 * Starts `pgbp wal-prefetch AFTER` (the script `script`, cli/pgbp.cjs) in the background, in a
 * session of its own so that it does not hold up the fetch that started it; it keeps the spool
 * ahead of recovery and exits once recovery has ended.
 */
export function startPrefetcher(
  script: string | undefined,
  after: string,
  line: WalLine,
  cwd: string,
  env: NodeJS.ProcessEnv,
): void {
  startInBackground(script, 'wal-prefetch', after, line, cwd, env);
}

/**
 * Starts `pgbp wal-push-ahead AFTER` the same way: it stores the ready segments after AFTER
 * ahead of PostgreSQL's calls, and exits once nothing is ready for a while.
 */
export function startPusher(
  script: string | undefined,
  after: string,
  line: WalLine,
  cwd: string,
  env: NodeJS.ProcessEnv,
): number | undefined {
  return startInBackground(script, 'wal-push-ahead', after, line, cwd, env);
}

/**
 * The environment of a wal command's Node started from here: NODE_EXTRA_CA_CERTS renamed
 * PGBP_EXTRA_CA_CERTS, as the launcher (cli/pgbp) starts one, so that it starts without reading
 * the certificates and applies them at its first TLS connection (cli/extra-ca.cjs).
 */
export function withDeferredCa(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: file, ...rest } = env;
  if (!file || env.PGBP_EXTRA_CA_CERTS !== undefined) return env;
  return { ...rest, PGBP_EXTRA_CA_CERTS: file };
}

function startInBackground(
  script: string | undefined,
  command: string,
  after: string,
  line: WalLine,
  cwd: string,
  env: NodeJS.ProcessEnv,
): number | undefined {
  if (!script) return undefined;
  const child = spawn(process.execPath, [script, command, after, ...forwarded(line, cwd)], {
    cwd,
    env: withDeferredCa(env),
    detached: true,
    stdio: 'ignore',
  });
  child.on('error', () => {});
  child.unref();
  return child.pid;
}
