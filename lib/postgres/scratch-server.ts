import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { accessSync, chownSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { processEnv } from '../platform/environment.js';
import type { Connection } from './pg-tools.js';

const run = promisify(execFile);

/**
 * A throw-away PostgreSQL server: initdb into a private temporary folder, started on a free
 * loopback port, trusted for its own superuser only over loopback, and stopped and removed on
 * every path out: `stop()`, a failed start, SIGTERM or SIGINT (an ECS StopTask, Ctrl-C), and
 * process exit. A drill restores into it, so it never loads the server the backup came from.
 * Run as root (a test machine), the server runs as the postgres OS user, as initdb requires.
 */
export interface ScratchServer {
  /** Where to connect: its superuser `postgres` on 127.0.0.1, no password. */
  readonly connection: Connection;
  /** The server's major version (the binaries'). */
  readonly major: number;
  /** The private folder holding the data directory, the socket and the log. */
  readonly root: string;
  /** Stops the server (fast, then immediate) and removes its folder; safe to call twice. */
  stop(): Promise<void>;
}

export interface ScratchServerOptions {
  /** The folder of initdb, pg_ctl and postgres; found on the PATH, else from pg_config. */
  readonly bindir?: string;
  /** Where the private folder goes (the task's ephemeral storage); the temporary directory by default. */
  readonly parent?: string;
  readonly env?: NodeJS.ProcessEnv;
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** The folder of the PostgreSQL server binaries: the PATH's initdb, else pg_config --bindir. */
export function serverBindir(env: NodeJS.ProcessEnv = processEnv()): string {
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, 'initdb'), constants.X_OK);
      return dir;
    } catch {
      // not here
    }
  }
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', env }).trim();
  } catch (cause) {
    throw new Error('no PostgreSQL server binaries: initdb is not on the PATH and pg_config is missing', {
      cause,
    });
  }
}

const live = new Set<() => void>();
const onSignal = (signal: NodeJS.Signals) => {
  for (const remove of [...live]) remove();
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  // What the signal would have done without this handler, unless someone else handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
};
const onExit = () => {
  for (const remove of [...live]) remove();
};

function track(remove: () => void): void {
  if (live.size === 0) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('exit', onExit);
  }
  live.add(remove);
}

function untrack(remove: () => void): void {
  live.delete(remove);
  if (live.size === 0) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('exit', onExit);
  }
}

/** Starts a scratch server; throws (leaving nothing behind) when initdb or the start fails. */
export async function startScratchServer(options: ScratchServerOptions = {}): Promise<ScratchServer> {
  const env = options.env ?? processEnv();
  const bindir = options.bindir ?? serverBindir(env);
  const asRoot = process.getuid?.() === 0;
  // initdb refuses to run as root: then the server is the postgres OS user's.
  const as = (tool: string, args: readonly string[]): [string, string[]] =>
    asRoot
      ? ['runuser', ['-u', 'postgres', '--', join(bindir, tool), ...args]]
      : [join(bindir, tool), [...args]];
  const root = mkdtempSync(join(options.parent ?? tmpdir(), 'pgbp-scratch-'));
  const data = join(root, 'data');
  const log = join(root, 'log');
  const toolEnv = { PATH: env.PATH ?? '', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };

  const removeNow = () => {
    // Synchronous: it also runs on exit and on a signal, where nothing asynchronous completes.
    const [cmd, args] = as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    spawnSync(cmd, args, { stdio: 'ignore', env: toolEnv });
    rmSync(root, { recursive: true, force: true });
    untrack(removeNow);
  };
  track(removeNow);
  try {
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(root, uid, gid);
    }
    const port = await freeLoopbackPort();
    const initdb = as('initdb', ['-D', data, '-U', 'postgres', '-E', 'UTF8', '--auth=trust', '--no-sync']);
    await run(initdb[0], initdb[1], { env: toolEnv });
    const settings = [
      `-c port=${port}`,
      "-c listen_addresses='127.0.0.1'",
      `-c unix_socket_directories='${root}'`,
      // What a drill needs: one restore, its checks, no durability past the container.
      '-c fsync=off',
      '-c full_page_writes=off',
      '-c synchronous_commit=off',
    ].join(' ');
    const start = as('pg_ctl', ['-D', data, '-l', log, '-o', settings, '-w', '-t', '120', 'start']);
    await run(start[0], start[1], { env: toolEnv });
    const version = execFileSync(join(bindir, 'postgres'), ['--version'], { encoding: 'utf8' });
    const major = Number(/\b(\d+)(?:\.\d+)?/.exec(version)?.[1] ?? 0);
    let stopped = false;
    return {
      connection: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
      major,
      root,
      async stop() {
        if (stopped) return;
        stopped = true;
        const [cmd, args] = as('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
        await run(cmd, args, { env: toolEnv }).catch(() => {});
        removeNow();
      },
    };
  } catch (error) {
    removeNow();
    const e = error as Error & { stderr?: string };
    throw new Error(`could not start a scratch PostgreSQL server: ${(e.stderr || e.message).trim()}`, {
      cause: error,
    });
  }
}
