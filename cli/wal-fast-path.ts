import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import {
  archiveTag,
  prefetchDir,
  prefetcherRunning,
  pushedDir,
  takeFromSpool,
  takePushRecord,
  writePosition,
} from '../lib/wal/spool.js';
import { parseWalLine, startPrefetcher, type WalLine } from './wal-line.js';

/**
 * PostgreSQL starts archive_command and restore_command once per WAL file, one after the other,
 * so what one call costs before it does anything is paid on every segment. The calls whose work
 * is already done end here, before the CLI, its config schema or a store client loads:
 * - `wal-fetch SEGMENT DEST` of a segment the prefetcher has spooled (fetched from the archive and
 *   verified): verified again and renamed into place, the prefetcher started if it is not running;
 * - `wal-push PATH` of a segment the pusher (lib/wal/push-ahead.ts) has stored: its record names
 *   the digest that the file still has.
 * Anything else (a miss, another kind of file, an option this does not know) returns undefined
 * and the CLI does the work, with every check and every message; this never answers "not
 * archived" nor reports a failure.
 */
export interface FastPathDeps {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** cli/pgbp.cjs, to start the prefetcher with. */
  readonly script?: string;
}

const SEGMENT = /^[0-9A-F]{24}$/;

function lineOf(args: readonly string[], deps: FastPathDeps): WalLine | undefined {
  try {
    const line = parseWalLine(args);
    // The archive must be named on the line: the built-in defaults depend on the config found.
    if (line.json || !(line.config || line.store)) return undefined;
    // Without --config the CLI may find one (PGBP_CONFIG, ./config/<stage>.yml), which is part of
    // the archive's tag there: the CLI decides (cli/pgbp does the same).
    if (!line.config && (deps.env.PGBP_CONFIG || deps.env.LAMBDA_TASK_ROOT)) return undefined;
    if (!line.config && existsSync(join(deps.cwd, 'config', `${deps.env.PGBP_STAGE ?? 'local'}.yml`))) {
      return undefined;
    }
    return line;
  } catch {
    return undefined;
  }
}

function tagOf(line: WalLine, deps: FastPathDeps): string | undefined {
  try {
    return archiveTag(deps.cwd, {
      ...(line.config ? { configFile: resolve(deps.cwd, line.config) } : {}),
      ...(line.store ? { store: line.store } : {}),
      ...(line.cluster ? { cluster: line.cluster } : {}),
    });
  } catch {
    return undefined;
  }
}

async function fastFetch(args: readonly string[], deps: FastPathDeps): Promise<number | undefined> {
  const line = lineOf(args, deps);
  const [name, dest, ...rest] = line?.positionals ?? [];
  if (!line || !name || !dest || rest.length > 0 || !SEGMENT.test(name)) return undefined;
  const tag = tagOf(line, deps);
  if (!tag) return undefined;
  const dir = prefetchDir(deps.cwd, tag);
  // Only the prefetcher's own segment in flight is worth waiting for; the CLI waits longer.
  const taken = await takeFromSpool(dir, name, resolve(deps.cwd, dest), 2_000);
  if (!taken) return undefined;
  await writePosition(dir, name);
  if (!(await prefetcherRunning(dir))) startPrefetcher(deps.script, name, line, deps.cwd, deps.env);
  return 0;
}

async function fastPush(args: readonly string[], deps: FastPathDeps): Promise<number | undefined> {
  const line = lineOf(args, deps);
  const [path, ...rest] = line?.positionals ?? [];
  if (!line || !path || rest.length > 0 || !SEGMENT.test(basename(path))) return undefined;
  const tag = tagOf(line, deps);
  if (!tag) return undefined;
  const recorded = await takePushRecord(pushedDir(deps.cwd, tag), basename(path), resolve(deps.cwd, path));
  return recorded ? 0 : undefined;
}

/** The exit status for a call answered here, or undefined for the CLI to run it. */
export async function runFastPath(argv: readonly string[], deps: FastPathDeps): Promise<number | undefined> {
  const [command, ...args] = argv;
  if (args.includes('--help') || args.includes('-h')) return undefined;
  try {
    if (command === 'wal-fetch') return await fastFetch(args, deps);
    if (command === 'wal-push') return await fastPush(args, deps);
  } catch {
    // Whatever went wrong here, the CLI does the work and says what is wrong.
  }
  return undefined;
}
