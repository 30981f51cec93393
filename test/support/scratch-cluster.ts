import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/**
 * Throw-away PostgreSQL servers of the tests' own, for what the shared server cannot give: a
 * password demanded, WAL archiving, base backups and recovery. Each is made with initdb as the
 * postgres OS user (as PostgreSQL runs archive_command and restore_command) in a private folder
 * under the temporary directory, listens on a free loopback port, and is stopped and removed by
 * `remove()`, also when starting it failed, and at the latest when the test process exits.
 */
export interface ScratchCluster {
  /** The private folder (owned by postgres, 0700) holding the data directory, log and socket. */
  readonly root: string;
  readonly data: string;
  readonly port: number;
  readonly password?: string;
  readonly log: string;
  /** libpq variables that reach this server as postgres over TCP. */
  env(database?: string): NodeJS.ProcessEnv;
  /** Runs SQL with psql (as postgres, over TCP) and returns its unaligned, tuples-only output. */
  sql(statement: string, database?: string): string;
  /** Starts the server (again), waiting until it accepts connections unless `wait: false`. */
  start(options?: { readonly wait?: boolean }): void;
  /** Stops the server; `immediate` is a crash as far as the data directory is concerned. */
  stop(mode?: 'fast' | 'immediate'): void;
  /** Whether a postmaster is running on the data directory. */
  running(): boolean;
  /** Stops the server if it runs and removes everything under `root`. */
  remove(): void;
}

export interface ClusterOptions {
  /** Settings written into postgresql.conf before the first start (values quoted as needed). */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** Demand this password (scram-sha-256) instead of trusting loopback connections. */
  readonly password?: string;
  /**
   * Start on this data directory instead of running initdb (a restored base backup, for
   * recovery): it must already be inside a folder made by {@link scratchRoot}.
   */
  readonly data?: string;
  readonly root?: string;
  /** initdb --wal-segsize in MiB. */
  readonly walSegmentMb?: number;
  /** Don't start the server (the caller writes recovery settings first, then calls start). */
  readonly start?: boolean;
}

const live = new Set<ScratchCluster>();
let hooked = false;
function removeAllOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of live) c.remove();
  });
}

let bindir: string | undefined;
/** The path of a PostgreSQL server binary (initdb, pg_ctl, postgres, pg_basebackup …). */
export function pgBin(tool: string): string {
  bindir ??= execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  return join(bindir, tool);
}

let ids: { uid: number; gid: number } | undefined;
/** The postgres OS user's uid and gid. */
export function postgresIds(): { uid: number; gid: number } {
  ids ??= (() => {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  })();
  return ids;
}

/** Runs a command as the postgres OS user; throws with its output when it fails. */
export function asPostgres(args: readonly string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${args[0]} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A new private folder owned by postgres (0700), for a cluster and whatever goes beside it. */
export function scratchRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'pgbp-cluster-'));
  const { uid, gid } = postgresIds();
  chownSync(root, uid, gid);
  chmodSync(root, 0o700);
  return root;
}

/** A folder inside `root` owned by postgres, e.g. a WAL directory for `cp` or a store. */
export function postgresDir(root: string, name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const { uid, gid } = postgresIds();
  chownSync(dir, uid, gid);
  return dir;
}

function confValue(v: string | number | boolean): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Appends settings to a data directory's postgresql.conf (the last one of a name wins). */
export function writeSettings(
  data: string,
  settings: Readonly<Record<string, string | number | boolean>>,
): void {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}\n`);
  appendFileSync(join(data, 'postgresql.conf'), `\n# scratch cluster settings\n${lines.join('')}`);
}

export async function startCluster(options: ClusterOptions = {}): Promise<ScratchCluster> {
  removeAllOnExit();
  const root = options.root ?? scratchRoot();
  const data = options.data ?? join(root, 'data');
  const log = join(root, 'log');
  const port = await freePort();
  const pgCtl = (...args: string[]) => asPostgres([pgBin('pg_ctl'), '-D', data, ...args]);
  const running = () =>
    existsSync(join(data, 'postmaster.pid')) &&
    spawnSync('runuser', ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', data, 'status']).status === 0;
  const cluster: ScratchCluster = {
    root,
    data,
    port,
    log,
    ...(options.password !== undefined ? { password: options.password } : {}),
    env(database = 'postgres') {
      return {
        ...process.env,
        PGHOST: '127.0.0.1',
        PGPORT: String(port),
        PGUSER: 'postgres',
        PGDATABASE: database,
        ...(options.password !== undefined ? { PGPASSWORD: options.password } : {}),
      };
    },
    sql(statement, database = 'postgres') {
      const r = spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-Atq', '-c', statement], {
        encoding: 'utf8',
        env: cluster.env(database),
      });
      if (r.status !== 0) throw new Error(`psql on port ${port} failed: ${r.stderr}`);
      return r.stdout.trim();
    },
    start({ wait = true } = {}) {
      pgCtl(...(wait ? ['-w', '-t', '120'] : ['-W']), '-l', log, 'start');
    },
    stop(mode = 'fast') {
      if (running()) pgCtl('-w', '-t', '120', '-m', mode, 'stop');
    },
    running,
    remove() {
      live.delete(cluster);
      if (existsSync(data)) {
        spawnSync(
          'runuser',
          ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', data, '-w', '-m', 'immediate', 'stop'],
          {
            stdio: 'ignore',
          },
        );
      }
      // A process of the server's own (restore_command's background prefetch) may still be
      // finishing a file: retry briefly rather than leave the folder behind.
      for (let attempt = 0; ; attempt++) {
        try {
          rmSync(root, { recursive: true, force: true });
          break;
        } catch (error) {
          if (attempt >= 20 || (error as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw error;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        }
      }
    },
  };
  live.add(cluster);
  try {
    if (!options.data) {
      const initdb = [pgBin('initdb'), '-D', data, '-U', 'postgres', '-E', 'UTF8', '--no-sync'];
      if (options.walSegmentMb) initdb.push(`--wal-segsize=${options.walSegmentMb}`);
      if (options.password !== undefined) {
        const pwfile = join(root, 'pw');
        writeFileSync(pwfile, `${options.password}\n`);
        const { uid, gid } = postgresIds();
        chownSync(pwfile, uid, gid);
        initdb.push('--auth=scram-sha-256', `--pwfile=${pwfile}`);
      } else {
        initdb.push('--auth=trust');
      }
      asPostgres(initdb);
    }
    writeSettings(data, {
      port,
      listen_addresses: '127.0.0.1',
      unix_socket_directories: root,
      fsync: false,
      ...options.settings,
    });
    if (options.start !== false) cluster.start();
    return cluster;
  } catch (error) {
    cluster.remove();
    throw error;
  }
}

/** A server that demands `password` (the shared test server trusts everyone), for the wrong-password cases. */
export async function startPasswordCluster(
  password: string,
): Promise<ScratchCluster & { readonly password: string }> {
  const cluster = await startCluster({ password });
  return Object.assign(cluster, { password });
}
