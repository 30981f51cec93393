// What every command is handed, and how it writes a line. Kept free of the config schema, the
// stores and their SDKs, so that registering a command (and printing its help) loads none of
// them: a command loads cli/resolve.ts when it runs.

/** What a command may touch: passed in, so tests run commands in-process with no module mocks. */
export interface CliDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborted when pgbp is interrupted (SIGTERM, SIGINT, SIGHUP): the command stops and cleans up. */
  readonly signal?: AbortSignal;
}

/** Each command registers itself; a command sets `code` on the holder it is given. */
export interface ExitHolder {
  code: number;
}

export interface CommonOptions {
  readonly config?: string;
  readonly store?: string;
  readonly json?: boolean;
}

/** Writes one line to stdout. */
export function out(deps: CliDeps, text: string): void {
  deps.stdout.write(`${text}\n`);
}

/** Writes one line to stderr. */
export function err(deps: CliDeps, text: string): void {
  deps.stderr.write(`${text}\n`);
}

/**
 * The status of a wal-* command whose own code failed to load or run (only a broken install gets
 * there): restore_command must then abort recovery (above 125), never end it as "not archived".
 */
export function walCommandFailed(argv: readonly string[], error: unknown, deps: CliDeps): number {
  deps.stderr.write(`pgbp: ${(error as Error).name}: ${(error as Error).message}\n`);
  return argv[0] === 'wal-fetch' ? 126 : 1;
}
