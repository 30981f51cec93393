import { type ChildProcess, spawn as nodeSpawn, type SpawnOptions } from 'node:child_process';
import type { Readable, Stream, Writable } from 'node:stream';
import { redact } from '../domain/redact.js';

/**
 * The one way this project runs a child process (pg_dump, zstd, pg_restore, the local tasks):
 * each child leads a process group of its own, so stopping it stops whatever it started too;
 * its exit is one model ({@link ChildExit}) with the head and the tail of its stderr, secrets
 * removed; every child still running is known, so an interrupted run can stop them all, and a
 * process that exits takes them with it.
 */

export type Spawn = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
export const defaultSpawn: Spawn = (command, args, options) => nodeSpawn(command, [...args], options);

/** How a child ended, with what it said on stderr (secrets removed). */
export interface ChildExit {
  /** The name people know it by (`pg_dump`, also when it runs under stdbuf). */
  readonly tool: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process could not start at all (not installed, not executable). */
  readonly spawnError?: Error;
  /** Its stderr as one line: the first lines and the first error lines, then the last ones. */
  readonly stderr: string;
}

export function exitedCleanly(exit: ChildExit): boolean {
  return exit.code === 0 && !exit.spawnError;
}

/**
 * Whether a process stopped only because the process reading its output had gone (SIGPIPE,
 * EPIPE; ECONNRESET on a write where the output is a socket, as a child's stdin is in Node).
 */
export function cutOffByReader(exit: ChildExit): boolean {
  return (
    !exit.spawnError &&
    (exit.signal === 'SIGPIPE' || /broken pipe|write[^;]*: connection reset by peer/i.test(exit.stderr))
  );
}

/**
 * Of the exits of a pipe's processes, in the order seen, the one that failed on its own: a
 * broken pipe only follows another failure (a process or the reader that stopped reading).
 */
export function ownFailure(exits: readonly ChildExit[]): ChildExit | undefined {
  return exits.find((e) => !exitedCleanly(e) && !cutOffByReader(e));
}

/** `pg_restore exited with code 1: …`, `zstd was killed by SIGKILL`, `pg_dump could not start: …`. */
export function describeExit(exit: ChildExit): string {
  if (exit.spawnError) return `${exit.tool} could not start: ${exit.spawnError.message}`;
  const why = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return `${exit.tool} ${why}${exit.stderr ? `: ${exit.stderr}` : ''}`;
}

/** A child that did not exit cleanly; the message names the tool and says what it said. */
export class ChildFailedError extends Error {
  override readonly name = 'ChildFailedError';
  readonly exit: ChildExit;
  constructor(exit: ChildExit) {
    super(describeExit(exit), exit.spawnError ? { cause: exit.spawnError } : undefined);
    this.exit = exit;
  }
}

/** Lines kept from the start, error lines kept after those, lines kept from the end. */
const HEAD_LINES = 3;
const ERROR_LINES = 3;
const TAIL_LINES = 8;
const LINE_CHARS = 500;
const SUMMARY_CHARS = 2000;
const ERROR_LINE = /\b(error|fatal|panic)\b/i;

interface Numbered {
  readonly n: number;
  readonly line: string;
}

/**
 * A child's stderr, kept small: the first lines and the first lines that name an error (the
 * cause, e.g. pg_restore's `ERROR: relation … does not exist`), and the last lines (where it
 * stopped, e.g. the long `Command was: …` that follows). Warnings matching a prefix are kept too.
 */
export class StderrLog {
  private partial = '';
  private count = 0;
  private readonly head: Numbered[] = [];
  private readonly errors: Numbered[] = [];
  private tail: Numbered[] = [];
  readonly warnings: string[] = [];

  constructor(
    private readonly secrets: readonly (string | undefined)[] = [],
    private readonly warningPrefix?: RegExp,
    private readonly onLine?: (line: string) => void,
  ) {}

  push(chunk: Buffer | string): void {
    const lines = (this.partial + chunk.toString()).split('\n');
    this.partial = lines.pop() ?? '';
    // A child that never ends a line must not grow this without bound.
    if (this.partial.length > 64 * 1024) {
      lines.push(this.partial);
      this.partial = '';
    }
    for (const line of lines) this.add(line);
  }

  /** Takes the last line, if it had no newline. */
  end(): void {
    if (this.partial) this.add(this.partial);
    this.partial = '';
  }

  private add(raw: string): void {
    const line = redact(raw.trim(), this.secrets);
    if (!line) return;
    this.onLine?.(line);
    const kept = { n: this.count, line: line.length > LINE_CHARS ? `${line.slice(0, LINE_CHARS)}…` : line };
    this.count += 1;
    if (this.head.length < HEAD_LINES) this.head.push(kept);
    else if (this.errors.length < ERROR_LINES && ERROR_LINE.test(line)) this.errors.push(kept);
    this.tail.push(kept);
    if (this.tail.length > TAIL_LINES) this.tail = this.tail.slice(-TAIL_LINES);
    const m = this.warningPrefix?.exec(line);
    // A runaway stream of warnings is summarised by its first hundred.
    if (m && this.warnings.length < 100) this.warnings.push(line.slice(m[0].length).trim());
  }

  /** One line: the kept lines in order, `…` where lines were left out. */
  summary(): string {
    const byNumber = new Map<number, string>();
    for (const { n, line } of [...this.head, ...this.errors, ...this.tail]) byNumber.set(n, line);
    const parts: string[] = [];
    let previous = -1;
    for (const n of [...byNumber.keys()].sort((a, b) => a - b)) {
      if (n > previous + 1) parts.push('…');
      parts.push(byNumber.get(n) as string);
      previous = n;
    }
    const text = parts.join('; ');
    if (text.length <= SUMMARY_CHARS) return text;
    const half = SUMMARY_CHARS / 2;
    return `${text.slice(0, half)} … ${text.slice(-half)}`;
  }
}

/** What a child's stdin or stdout is: a pipe to this process, nothing, a stream or a descriptor. */
export type StdioEntry = 'pipe' | 'ignore' | 'inherit' | Stream | number;

export interface StartOptions {
  /** The name in messages; the command's by default. */
  readonly tool?: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly stdin?: StdioEntry;
  readonly stdout?: StdioEntry;
  /** Values removed from what the child says, wherever they appear. */
  readonly secrets?: readonly (string | undefined)[];
  /** Stderr lines with this prefix are collected as warnings (without it). */
  readonly warningPrefix?: RegExp;
  /** Every stderr line as it comes, secrets removed. */
  readonly onStderrLine?: (line: string) => void;
  readonly spawn?: Spawn;
  /** How long a stopped child has before its group gets SIGKILL. */
  readonly graceMs?: number;
}

export interface Child {
  readonly tool: string;
  readonly pid: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  /** Settles (never rejects) once the child has exited and its stdio closed. */
  readonly exited: Promise<ChildExit>;
  /** Warning lines (see {@link StartOptions.warningPrefix}). */
  warnings(): readonly string[];
  running(): boolean;
  /**
   * Signals the child's process group (SIGTERM unless told); whatever is still running after
   * the grace period gets SIGKILL. Asked again, it does not signal again (a child that handles
   * the first signal by cleaning up may take a second one as "stop now"), except for SIGKILL.
   */
  stop(signal?: NodeJS.Signals): void;
}

const DEFAULT_GRACE_MS = 5000;

/** Every child started here that has not exited yet. */
const live = new Set<Child>();
let exitHookInstalled = false;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already (ESRCH); a child spawned without a group of its own gets it alone.
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

/** Starts a child in a process group of its own. Stderr is always read here (see {@link StderrLog}). */
export function startChild(command: string, args: readonly string[], options: StartOptions): Child {
  const tool = options.tool ?? command;
  const log = new StderrLog(options.secrets ?? [], options.warningPrefix, options.onStderrLine);
  const spawn = options.spawn ?? defaultSpawn;
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Whatever way this process ends, it takes its children with it.
    process.once('exit', () => {
      for (const child of live) if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
    });
  }
  const proc = spawn(command, args, {
    env: options.env,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    stdio: [options.stdin ?? 'ignore', options.stdout ?? 'ignore', 'pipe'],
    detached: true,
  });
  proc.stderr?.on('data', (d: Buffer) => log.push(d));
  // A child that dies early makes writes to its stdin fail with EPIPE; its exit says why.
  proc.stdin?.on('error', () => {});
  let ended = false;
  let stopped = false;
  let killTimer: NodeJS.Timeout | undefined;
  const exited = new Promise<ChildExit>((resolve) => {
    let spawnError: Error | undefined;
    const finish = (exit: ChildExit) => {
      ended = true;
      live.delete(child);
      if (killTimer) clearTimeout(killTimer);
      log.end();
      resolve({ ...exit, stderr: log.summary() });
    };
    proc.once('error', (e) => {
      spawnError = e;
      // 'close' may never follow a failed spawn.
      if (proc.pid === undefined) finish({ tool, code: null, signal: null, spawnError: e, stderr: '' });
    });
    proc.once('close', (code, signal) => {
      finish({ tool, code, signal, ...(spawnError ? { spawnError } : {}), stderr: '' });
    });
  });
  const running = () =>
    !ended && proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null;
  const child: Child = {
    tool,
    pid: proc.pid,
    stdin: proc.stdin,
    stdout: proc.stdout,
    exited,
    warnings: () => [...log.warnings],
    running,
    stop(signal = 'SIGTERM') {
      if (!running() || proc.pid === undefined) return;
      if (stopped && signal !== 'SIGKILL') return;
      stopped = true;
      const pid = proc.pid;
      signalGroup(pid, signal);
      if (!killTimer && signal !== 'SIGKILL') {
        killTimer = setTimeout(() => {
          if (!ended) signalGroup(pid, 'SIGKILL');
        }, options.graceMs ?? DEFAULT_GRACE_MS);
        killTimer.unref();
      }
    },
  };
  if (proc.pid !== undefined) live.add(child);
  return child;
}

/**
 * Starts `command` with its stdout the stdin of `consumer` (a child started with its stdin a
 * pipe), so the bytes go from one child to the other without passing through this process (as
 * `producer | consumer` in a shell). This process's copy of that pipe is closed once the producer
 * has its own: the consumer's input ends when the producer exits, whichever way.
 */
export function startChildInto(
  consumer: Child,
  command: string,
  args: readonly string[],
  options: Omit<StartOptions, 'stdout'>,
): Child {
  const sink = consumer.stdin;
  if (!sink) throw new Error(`${consumer.tool} was not started with its stdin a pipe`);
  try {
    return startChild(command, args, { ...options, stdout: sink });
  } finally {
    sink.destroy();
  }
}

/** Stops every child still running (an interrupted run); resolves once they have all exited. */
export async function stopAllChildren(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const running = [...live];
  for (const child of running) child.stop(signal);
  await Promise.all(running.map((c) => c.exited));
}

/** How many children are still running. */
export function runningChildren(): number {
  return live.size;
}

export interface ProcessOutput {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a short command to completion, capturing its output; rejects when it cannot start. */
export async function capture(
  spawn: Spawn,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<ProcessOutput> {
  const child = startChild(command, args, { env, spawn, stdout: 'pipe' });
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  const exit = await child.exited;
  if (exit.spawnError) throw exit.spawnError;
  return { code: exit.code, stdout, stderr: exit.stderr };
}

/** Everything a child wrote to stdout and stderr, and its exit code, once it has ended. */
export function outputOf(child: ChildProcess): Promise<ProcessOutput> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
