import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type pg from 'pg';
import { InvalidRestoreRequestError } from '../domain/errors.js';
import { redact } from '../domain/redact.js';
import { type Connection, defaultSpawn, libpqEnv, pgClient, quoteIdent, type Spawn } from './pg-tools.js';
import { serverVersionOf, type Version } from './versions.js';

/** How a child process ended, with the last of what it said on stderr (secrets removed). */
export interface ToolExit {
  readonly tool: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process could not start at all (not installed, not executable). */
  readonly spawnError?: Error;
  /** The child's stderr as one line, redacted. */
  readonly stderr: string;
}

export function exitedCleanly(exit: ToolExit): boolean {
  return exit.code === 0 && !exit.spawnError;
}

/** Whether a filter stopped only because the process reading its output had gone (SIGPIPE, EPIPE). */
export function cutOffByReader(exit: ToolExit): boolean {
  return !exit.spawnError && (exit.signal === 'SIGPIPE' || /broken pipe/i.test(exit.stderr));
}

/** `pg_restore exited with code 1: …` for error messages. */
export function describeExit(exit: ToolExit): string {
  const why = exit.spawnError
    ? `could not start (${exit.spawnError.message})`
    : exit.signal
      ? `was killed by ${exit.signal}`
      : `exited with code ${exit.code}`;
  return `${exit.tool} ${why}${exit.stderr ? `: ${exit.stderr}` : ''}`;
}

/** Collects a child's stderr: every warning line, and a short tail for errors. */
class StderrLines {
  private partial = '';
  private tail: string[] = [];
  readonly warnings: string[] = [];
  constructor(
    private readonly secrets: readonly (string | undefined)[],
    private readonly warningPrefix?: RegExp,
  ) {}
  push(chunk: Buffer | string): void {
    const lines = (this.partial + chunk.toString()).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }
  end(): void {
    if (this.partial) this.line(this.partial);
    this.partial = '';
  }
  private line(raw: string): void {
    const line = redact(raw.trim(), this.secrets);
    if (!line) return;
    this.tail = [...this.tail, line].slice(-8);
    const m = this.warningPrefix?.exec(line);
    // A runaway stream of warnings is summarised by its first hundred.
    if (m && this.warnings.length < 100) this.warnings.push(line.slice(m[0].length).trim());
  }
  summary(): string {
    return this.tail.join('; ').slice(-2000);
  }
}

interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<ToolExit>;
  readonly lines: StderrLines;
}

function start(
  spawn: Spawn,
  tool: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  stdin: 'pipe' | 'ignore' | Readable,
  stdout: 'pipe' | 'ignore',
  secrets: readonly (string | undefined)[],
  warningPrefix?: RegExp,
): Started {
  const lines = new StderrLines(secrets, warningPrefix);
  const child = spawn(tool, args, { env, stdio: [stdin, stdout, 'pipe'] });
  child.stderr?.on('data', (d: Buffer) => lines.push(d));
  // A child that dies early makes writes to its stdin fail with EPIPE; its exit says why.
  child.stdin?.on('error', () => {});
  const exited = new Promise<ToolExit>((resolve) => {
    let spawnError: Error | undefined;
    child.once('error', (e) => {
      spawnError = e;
      // 'close' may never follow a failed spawn.
      if (child.pid === undefined) {
        lines.end();
        resolve({ tool, code: null, signal: null, spawnError: e, stderr: lines.summary() });
      }
    });
    child.once('close', (code, signal) => {
      lines.end();
      resolve({ tool, code, signal, ...(spawnError ? { spawnError } : {}), stderr: lines.summary() });
    });
  });
  return { child, exited, lines };
}

export interface PgRestoreOptions {
  /** The server to restore into; `database` is the target. */
  readonly connection: Connection;
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  /** A seekable archive file; without one, pg_restore reads the archive from its stdin. */
  readonly file?: string;
  /**
   * Another child's stdout to read the archive from, joined at the OS level so the bytes do not
   * pass through this process; its `stdin` is then null.
   */
  readonly stdinFrom?: Readable;
  readonly jobs: number;
  readonly noOwner: boolean;
  readonly noPrivileges: boolean;
  readonly schemas: readonly string[];
}

/** A value for a libpq connection string: quoted, so a name is never read as key=value pairs. */
export function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * pg_restore's arguments. `--exit-on-error`: a restore that hit an error proves nothing and is
 * dropped, so there is no point going on. The target goes in as a connection string naming only
 * the database; host, port and user come from the libpq environment, the password from PGPASSWORD.
 */
export function pgRestoreArgs(o: Omit<PgRestoreOptions, 'env' | 'spawn' | 'stdinFrom'>): string[] {
  const args = [
    '--exit-on-error',
    '--no-password',
    `--dbname=dbname=${conninfoValue(o.connection.database)}`,
  ];
  if (o.noOwner) args.push('--no-owner');
  if (o.noPrivileges) args.push('--no-privileges');
  for (const schema of o.schemas) args.push(`--schema=${schema}`);
  if (o.jobs > 1) {
    if (!o.file) throw new RangeError('parallel pg_restore needs a seekable file');
    args.push(`--jobs=${o.jobs}`);
  }
  if (o.file) args.push(o.file);
  return args;
}

export interface PgRestoreRun {
  readonly child: ChildProcess;
  /** Where the archive goes when pg_restore reads it from stdin. */
  readonly stdin: Writable | null;
  readonly exited: Promise<ToolExit>;
  /** `pg_restore: warning: …` lines, without the prefix, secrets removed. */
  warnings(): readonly string[];
}

/** Starts pg_restore into `connection.database`, from a file or from its stdin. */
export function startPgRestore(o: PgRestoreOptions): PgRestoreRun {
  const env = libpqEnv(o.connection, o.env);
  const run = start(
    o.spawn ?? defaultSpawn,
    'pg_restore',
    pgRestoreArgs(o),
    env,
    o.file ? 'ignore' : (o.stdinFrom ?? 'pipe'),
    'ignore',
    [o.connection.password],
    /^pg_restore: warning:/,
  );
  return {
    child: run.child,
    stdin: run.child.stdin,
    exited: run.exited,
    warnings: () => [...run.lines.warnings],
  };
}

export interface DecompressRun {
  readonly child: ChildProcess;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly exited: Promise<ToolExit>;
}

/** Starts `zstd -d`, a filter from stdin to stdout. */
export function startZstdDecompress(env: NodeJS.ProcessEnv, spawn: Spawn = defaultSpawn): DecompressRun {
  const run = start(spawn, 'zstd', ['-d', '-q', '-c'], env, 'pipe', 'pipe', []);
  const { stdin, stdout } = run.child;
  if (!stdin || !stdout) throw new Error('zstd started without pipes');
  return { child: run.child, stdin, stdout, exited: run.exited };
}

/** Stops a child that is still running; its `exited` promise then settles. */
export function stopChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGTERM');
}

// The databases a restore creates, checks and drops, through a maintenance database.

async function withAdmin<T>(
  c: Connection,
  maintenance: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await pgClient(c, maintenance);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The server's version, from `server_version_num`. */
export async function serverVersion(c: Connection, maintenance: string): Promise<Version> {
  return withAdmin(c, maintenance, async (client) => {
    const r = await client.query<{ v: string; num: string }>(
      `select current_setting('server_version') as v, current_setting('server_version_num') as num`,
    );
    return serverVersionOf(r.rows[0]?.v ?? '', r.rows[0]?.num ?? '');
  });
}

export async function databaseExists(c: Connection, maintenance: string, name: string): Promise<boolean> {
  return withAdmin(c, maintenance, async (client) => {
    const r = await client.query('select 1 from pg_database where datname = $1', [name]);
    return (r.rowCount ?? 0) > 0;
  });
}

/**
 * Creates an empty database from template0, so nothing added to template1 on this server gets in
 * the way of the restore. Another session creating the same name first is a refused request.
 */
export async function createEmptyDatabase(c: Connection, maintenance: string, name: string): Promise<void> {
  await withAdmin(c, maintenance, async (client) => {
    try {
      await client.query(`create database ${quoteIdent(name)} template template0`);
    } catch (error) {
      if ((error as { code?: string }).code === '42P04') {
        throw new InvalidRestoreRequestError(`database ${name} already exists`, { cause: error });
      }
      throw error;
    }
  });
}

/** Names of the databases on the server that start with `prefix`. */
export async function databasesStartingWith(
  c: Connection,
  maintenance: string,
  prefix: string,
): Promise<string[]> {
  return withAdmin(c, maintenance, async (client) => {
    const r = await client.query<{ datname: string }>(
      'select datname from pg_database where left(datname, length($1)) = $1 order by 1',
      [prefix],
    );
    return r.rows.map((row) => row.datname);
  });
}

/** Drops a database, disconnecting whoever is still in it. */
export async function dropDatabase(c: Connection, maintenance: string, name: string): Promise<void> {
  await withAdmin(c, maintenance, async (client) => {
    await client.query(`drop database if exists ${quoteIdent(name)} with (force)`);
  });
}

/** Puts `fresh` in place of `old`: drops `old` (disconnecting its sessions), renames `fresh` to it. */
export async function swapDatabase(
  c: Connection,
  maintenance: string,
  fresh: string,
  old: string,
): Promise<void> {
  await withAdmin(c, maintenance, async (client) => {
    await client.query(`drop database if exists ${quoteIdent(old)} with (force)`);
    await client.query(`alter database ${quoteIdent(fresh)} rename to ${quoteIdent(old)}`);
  });
}

/** Creates schemas that `pg_restore --schema` will fill: it restores what is in them, not the schemas. */
export async function createSchemas(c: Connection, schemas: readonly string[]): Promise<void> {
  if (schemas.length === 0) return;
  const client = await pgClient(c);
  await client.connect();
  try {
    for (const s of schemas) await client.query(`create schema if not exists ${quoteIdent(s)}`);
  } finally {
    await client.end().catch(() => {});
  }
}
