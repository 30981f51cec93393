import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../lib/config.js';
import { WalConflictError } from '../../lib/domain/errors.js';
import { redact } from '../../lib/domain/redact.js';
import { systemClock } from '../../lib/platform/clock.js';
import { WalArchive } from '../../lib/wal/archive.js';
import { archiveTag } from '../../lib/wal/spool.js';
import { type CliDeps, type ExitHolder, err, out } from '../context.js';
import { configFileOf, resolveConfig, resolveStore } from '../resolve.js';
import { parseWalLine, startPrefetcher, type WalLine } from '../wal-line.js';

/**
 * restore_command's status for a file that exists but cannot be handed over (damaged, or the
 * store unreadable after retries), and for any failure of pgbp itself: PostgreSQL aborts
 * recovery on a status above 125 instead of taking it for the end of the archive and promoting.
 */
export const FETCH_ABORT = 126;
/** restore_command's status for a file the archive does not hold. */
export const FETCH_MISSING = 1;

type Parsed = WalLine;

function parse(args: readonly string[]): Parsed {
  return parseWalLine(args);
}

/** Which archive's spool and push records this command line uses (see archiveTag). */
function tagOf(deps: CliDeps, opts: Parsed): string {
  const configFile = configFileOf(deps, opts.config);
  return archiveTag(deps.cwd, {
    ...(configFile ? { configFile } : {}),
    ...(opts.store ? { store: opts.store } : {}),
    ...(opts.cluster ? { cluster: opts.cluster } : {}),
  });
}

async function openArchive(deps: CliDeps, opts: Parsed): Promise<{ config: Config; archive: WalArchive }> {
  const config = resolveConfig(deps, opts.config);
  const store = await resolveStore(deps, config, opts.store);
  return { config, archive: new WalArchive(store, opts.cluster ?? config.wal.cluster) };
}

function describe(error: unknown, deps: CliDeps): string {
  const e = error as Error;
  return `${e.name}: ${redact(e.message, [deps.env.PGPASSWORD]).split('\n').join(' | ')}`;
}

/** `pgbp wal-push FILE`: archive_command. 0 only once the file is durably stored. */
export async function runWalPush(args: readonly string[], deps: CliDeps): Promise<number> {
  let opts: Parsed;
  try {
    opts = parse(args);
  } catch (error) {
    err(deps, `pgbp wal-push: ${(error as Error).message}`);
    return 64;
  }
  const [path, ...rest] = opts.positionals;
  if (!path || rest.length > 0) {
    err(deps, 'usage: pgbp wal-push <path of the WAL file (%p)> [--config FILE] [--store URL]');
    return 64;
  }
  let config: Config | undefined;
  try {
    const opened = await openArchive(deps, opts);
    config = opened.config;
    const { pushWithAhead } = await import('../../lib/wal/push-ahead.js');
    const outcome = await pushWithAhead(resolve(deps.cwd, path), {
      archive: opened.archive,
      level: opened.config.wal.level,
      dataDir: deps.cwd,
      clock: systemClock,
      env: deps.env,
      ahead: opened.config.wal.pushAhead,
      tag: tagOf(deps, opts),
    });
    if (opts.json) out(deps, JSON.stringify(outcome));
    return 0;
  } catch (error) {
    err(deps, `pgbp wal-push ${path}: ${describe(error, deps)}`);
    if (error instanceof WalConflictError && config) await alertConflict(config, error, deps);
    return 1;
  }
}

async function alertConflict(config: Config, error: Error, deps: CliDeps): Promise<void> {
  try {
    const [{ createAlerter }, { walArchiveAlert }] = await Promise.all([
      import('../../lib/runtime.js'),
      import('../../lib/domain/alerts.js'),
    ]);
    const alerter = createAlerter(config, deps.env, (t) => deps.stderr.write(t));
    await alerter.publish(
      walArchiveAlert('wal-archive-conflict', config.wal.cluster, error.message, systemClock.now()),
    );
  } catch (failure) {
    err(deps, `pgbp wal-push: the wal-archive-conflict alert was not delivered: ${describe(failure, deps)}`);
  }
}

/**
 * `pgbp wal-fetch NAME DEST`: restore_command. 0 with the verified file written atomically at
 * DEST; 1, quietly, when the archive does not hold NAME; {@link FETCH_ABORT} for anything else.
 */
export async function runWalFetch(args: readonly string[], deps: CliDeps): Promise<number> {
  let opts: Parsed;
  try {
    opts = parse(args);
  } catch (error) {
    err(deps, `pgbp wal-fetch: ${(error as Error).message}`);
    return FETCH_ABORT;
  }
  const [name, dest, ...rest] = opts.positionals;
  if (!name || !dest || rest.length > 0) {
    err(deps, 'usage: pgbp wal-fetch <file name (%f)> <destination (%p)> [--config FILE] [--store URL]');
    return FETCH_ABORT;
  }
  try {
    const { config, archive } = await openArchive(deps, opts);
    const { fetchWithSpool } = await import('../../lib/wal/prefetch.js');
    const outcome = await fetchWithSpool(name, resolve(deps.cwd, dest), {
      archive,
      env: deps.env,
      dataDir: deps.cwd,
      tag: tagOf(deps, opts),
      count: config.wal.prefetch,
      concurrency: config.wal.prefetchConcurrency,
      startPrefetcher: (after) => startPrefetcher(process.argv[1], after, opts, deps.cwd, deps.env),
    });
    if (opts.json) out(deps, JSON.stringify(outcome));
    return outcome.status === 'fetched' ? 0 : FETCH_MISSING;
  } catch (error) {
    err(deps, `pgbp wal-fetch ${name}: recovery must not go on without it: ${describe(error, deps)}`);
    return FETCH_ABORT;
  }
}

/** `pgbp wal-prefetch AFTER`: the background half of wal-fetch (see lib/wal/prefetch.ts). */
export async function runWalPrefetch(args: readonly string[], deps: CliDeps): Promise<number> {
  try {
    const opts = parse(args);
    const [after] = opts.positionals;
    if (!after) return 64;
    const { config, archive } = await openArchive(deps, opts);
    const { prefetchAhead } = await import('../../lib/wal/prefetch.js');
    await prefetchAhead(after, {
      archive,
      env: deps.env,
      dataDir: deps.cwd,
      tag: tagOf(deps, opts),
      count: config.wal.prefetch,
      concurrency: config.wal.prefetchConcurrency,
    });
    return 0;
  } catch {
    // Nothing to report to: a fetch that finds no spooled file fetches it itself and says why.
    return 1;
  }
}

/** For `pgbp --help`: the commands themselves run before commander (see main.ts). */
export function registerWal(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('wal-push')
    .description(
      "archive_command: 'pgbp wal-push %p --config FILE'. Stores one WAL file compressed, with its SHA-256; exit 0 only once durably stored",
    )
    .argument('<path>', 'the WAL file (%p)')
    .option('--store <url>', 'store URL, overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--cluster <name>', "the archive's cluster name, overrides wal.cluster")
    .action(async (path: string, opts: Record<string, string>) => {
      exit.code = await runWalPush([path, ...flags(opts)], deps);
    });
  program
    .command('wal-fetch')
    .description(
      `restore_command: 'pgbp wal-fetch %f %p --config FILE'. Exit 0 with the verified file at %p, 1 when not archived, ${FETCH_ABORT} when damaged or unreadable`,
    )
    .argument('<name>', 'the file name (%f)')
    .argument('<dest>', 'where to write it (%p)')
    .option('--store <url>', 'store URL, overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--cluster <name>', "the archive's cluster name, overrides wal.cluster")
    .action(async (name: string, dest: string, opts: Record<string, string>) => {
      exit.code = await runWalFetch([name, dest, ...flags(opts)], deps);
    });
}

function flags(opts: Record<string, string | boolean>): string[] {
  return Object.entries(opts).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, String(v)]));
}
