// What runs PostgreSQL's once-per-file commands (wal-push, wal-fetch, wal-prefetch): loaded
// when one runs, never by `pgbp --help` (see FRONT in cli/bundle.mjs).
import { resolve } from 'node:path';
import type { Config } from '../../lib/config.js';
import { WalConflictError } from '../../lib/domain/errors.js';
import { redact } from '../../lib/domain/redact.js';
import type { PassedOver } from '../../lib/domain/store-roles.js';
import { FETCH_ABORT, FETCH_MISSING } from '../../lib/domain/wal-names.js';
import { systemClock } from '../../lib/platform/clock.js';
import { WalArchive } from '../../lib/wal/archive.js';
import type { RoleArchive } from '../../lib/wal/push.js';
import { archiveTag } from '../../lib/wal/spool.js';
import { type CliDeps, err, out } from '../context.js';
import { configFileOf, resolveConfig, resolveReadableStores } from '../resolve.js';
import { parseWalLine, startPrefetcher, startPusher, type WalLine } from '../wal-line.js';

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

/**
 * Every configured store's part of the archive, the primary first (`--store URL`: that store
 * alone), and the configured stores that could not be opened (a NAS directory not mounted).
 */
async function openArchives(
  deps: CliDeps,
  opts: Parsed,
): Promise<{ config: Config; archives: RoleArchive[]; unavailable: PassedOver[] }> {
  const config = resolveConfig(deps, opts.config);
  const { stores, unavailable } = await resolveReadableStores(deps, config, opts.store);
  const cluster = opts.cluster ?? config.wal.cluster;
  return {
    config,
    archives: stores.map((s) => ({ role: s.role, archive: new WalArchive(s.store, cluster) })),
    unavailable,
  };
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
    const opened = await openArchives(deps, opts);
    config = opened.config;
    const { pushWithAhead } = await import('../../lib/wal/push-ahead.js');
    const outcome = await pushWithAhead(resolve(deps.cwd, path), {
      archives: opened.archives,
      unavailable: opened.unavailable,
      level: opened.config.wal.level,
      dataDir: deps.cwd,
      clock: systemClock,
      env: deps.env,
      ahead: opened.config.wal.pushAhead,
      tag: tagOf(deps, opts),
      startPusher: (after) => startPusher(process.argv[1], after, opts, deps.cwd, deps.env),
    });
    if (outcome.degraded) await reportDegraded(opened.config, outcome.name, outcome.degraded, deps);
    if (opts.json) out(deps, JSON.stringify(outcome));
    return 0;
  } catch (error) {
    err(deps, `pgbp wal-push ${path}: ${describe(error, deps)}`);
    if (error instanceof WalConflictError && config) await alertConflict(config, error, deps);
    return 1;
  }
}

/**
 * A push stored in some stores but not all: a line per store for PostgreSQL's log (every call),
 * and a `wal-archive-degraded` alert per store at most hourly (see claimDegradedAlerts).
 */
async function reportDegraded(
  config: Config,
  name: string,
  degraded: readonly PassedOver[],
  deps: CliDeps,
): Promise<void> {
  for (const d of degraded) {
    err(
      deps,
      `pgbp wal-push: degraded: ${name} is not in the ${d.role} store ${d.url} (${redact(d.reason, [deps.env.PGPASSWORD]).split('\n').join(' | ')}); it is stored in the other, and pgbp sync copies it across once the store is back`,
    );
  }
  try {
    const { claimDegradedAlerts, releaseDegradedAlert } = await import('../../lib/wal/degraded-alerts.js');
    const due = await claimDegradedAlerts(deps.cwd, degraded, systemClock.now());
    if (due.length === 0) return;
    const [{ createAlerter }, { walArchiveAlert }] = await Promise.all([
      import('../../lib/runtime.js'),
      import('../../lib/domain/alerts.js'),
    ]);
    const alerter = createAlerter(config, deps.env, (t) => deps.stderr.write(t));
    for (const d of due) {
      const detail = `the ${d.role} store ${d.url} failed to store ${name} (${redact(d.reason, [deps.env.PGPASSWORD])}); the WAL is in the other store only`;
      try {
        await alerter.publish(
          walArchiveAlert('wal-archive-degraded', config.wal.cluster, detail, systemClock.now()),
        );
      } catch (failure) {
        await releaseDegradedAlert(deps.cwd, d);
        throw failure;
      }
    }
  } catch (failure) {
    err(deps, `pgbp wal-push: the wal-archive-degraded alert was not delivered: ${describe(failure, deps)}`);
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
    const { config, archives, unavailable } = await openArchives(deps, opts);
    const [{ fetchWithSpool, defaultPrefetchConcurrency }, { describeCopyUsed }] = await Promise.all([
      import('../../lib/wal/prefetch.js'),
      import('../../lib/domain/store-roles.js'),
    ]);
    const outcome = await fetchWithSpool(name, resolve(deps.cwd, dest), {
      archives,
      unavailable,
      onCopyUsed: (file, copy) =>
        err(deps, `pgbp wal-fetch ${file}: ${redact(describeCopyUsed(copy), [deps.env.PGPASSWORD])}`),
      env: deps.env,
      dataDir: deps.cwd,
      tag: tagOf(deps, opts),
      count: config.wal.prefetch,
      concurrency: config.wal.prefetchConcurrency ?? defaultPrefetchConcurrency(archives),
      startPrefetcher: (after) => startPrefetcher(process.argv[1], after, opts, deps.cwd, deps.env),
    });
    if (opts.json) out(deps, JSON.stringify(outcome));
    return outcome.status === 'fetched' ? 0 : FETCH_MISSING;
  } catch (error) {
    err(deps, `pgbp wal-fetch ${name}: recovery must not go on without it: ${describe(error, deps)}`);
    return FETCH_ABORT;
  }
}

/** `pgbp wal-push-ahead AFTER`: the background half of wal-push (see lib/wal/push-ahead.ts). */
export async function runWalPushAhead(args: readonly string[], deps: CliDeps): Promise<number> {
  try {
    const opts = parse(args);
    const [after] = opts.positionals;
    if (!after) return 64;
    const { config, archives, unavailable } = await openArchives(deps, opts);
    const { pushAhead } = await import('../../lib/wal/push-ahead.js');
    await pushAhead(after, {
      archives,
      unavailable,
      level: config.wal.level,
      dataDir: deps.cwd,
      clock: systemClock,
      env: deps.env,
      ahead: config.wal.pushAhead,
      tag: tagOf(deps, opts),
    });
    return 0;
  } catch {
    // Nothing to report to: PostgreSQL's own call pushes what has no record, and says what is wrong.
    return 1;
  }
}

/** `pgbp wal-prefetch AFTER`: the background half of wal-fetch (see lib/wal/prefetch.ts). */
export async function runWalPrefetch(args: readonly string[], deps: CliDeps): Promise<number> {
  try {
    const opts = parse(args);
    const [after] = opts.positionals;
    if (!after) return 64;
    const { config, archives, unavailable } = await openArchives(deps, opts);
    const { prefetchAhead, defaultPrefetchConcurrency } = await import('../../lib/wal/prefetch.js');
    await prefetchAhead(after, {
      archives,
      unavailable,
      env: deps.env,
      dataDir: deps.cwd,
      tag: tagOf(deps, opts),
      count: config.wal.prefetch,
      concurrency: config.wal.prefetchConcurrency ?? defaultPrefetchConcurrency(archives),
    });
    return 0;
  } catch {
    // Nothing to report to: a fetch that finds no spooled file fetches it itself and says why.
    return 1;
  }
}
