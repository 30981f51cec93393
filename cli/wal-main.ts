// The commands PostgreSQL runs once per WAL file (wal-push, wal-fetch) and their background
// halves (wal-prefetch, wal-push-ahead): what their start-up loads is paid on every segment, and
// a recovery waits for the prefetcher's start before its first segment. cli/pgbp.cjs runs them
// from a bundle of their own (dist/wal/, see WAL in cli/bundle.mjs), one CommonJS file with a V8
// code cache, without loading the CLI's front or commander; the front runs them from here too.

import { runWalFetch, runWalPrefetch, runWalPush, runWalPushAhead } from './commands/wal-run.js';
import { type CliDeps, walCommandFailed } from './context.js';

const walCommands: Record<string, (args: readonly string[], deps: CliDeps) => Promise<number>> = {
  'wal-push': runWalPush,
  'wal-fetch': runWalFetch,
  'wal-prefetch': runWalPrefetch,
  'wal-push-ahead': runWalPushAhead,
};

/**
 * Runs a wal-* command line, parsed without commander; undefined for any other line (another
 * command, or a help text: commander prints it), which the CLI's front then runs.
 */
export async function runWalCommand(argv: readonly string[], deps: CliDeps): Promise<number | undefined> {
  const run = argv[0] !== undefined && Object.hasOwn(walCommands, argv[0]) ? walCommands[argv[0]] : undefined;
  if (!run || argv.includes('--help') || argv.includes('-h')) return undefined;
  try {
    return await run(argv.slice(1), deps);
  } catch (error) {
    return walCommandFailed(argv, error, deps);
  }
}
