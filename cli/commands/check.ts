import type { Command } from 'commander';
import { parseDuration } from '../../lib/domain/units.js';
import { type CliDeps, type ExitHolder, out } from '../context.js';

export function registerCheck(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('check')
    .description(
      "Checks WAL archiving end to end: the server's settings, its archiver, the archive's identity, lag and gaps, and a round trip; exit 1 with one line per problem",
    )
    .option('--store <url>', 'store URL (s3://bucket/prefix or file:///dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--cluster <name>', "the archive's cluster name, overrides wal.cluster")
    .option('--timeout <duration>', 'how long the round trip waits for the switched segment', '60s')
    .option('--no-round-trip', 'do not switch WAL and wait for it in the archive')
    .option('--json', 'print the report as JSON')
    .action(
      async (opts: {
        store?: string;
        config?: string;
        cluster?: string;
        timeout: string;
        roundTrip: boolean;
        json?: boolean;
      }) => {
        const [
          { configFileOf, resolveConfig, resolveReadableStores },
          { systemClock },
          { connectionFor },
          { WalArchive },
          { checkArchive },
        ] = await Promise.all([
          import('../resolve.js'),
          import('../../lib/platform/clock.js'),
          import('../../lib/postgres/connection.js'),
          import('../../lib/wal/archive.js'),
          import('../../lib/wal/check.js'),
        ]);
        const config = resolveConfig(deps, opts.config);
        const cluster = opts.cluster ?? config.wal.cluster;
        // Each configured store (`--store URL`: that one alone), the primary first.
        const { stores, unavailable } = await resolveReadableStores(deps, config, opts.store);
        const archives = stores.map((s) => ({ role: s.role, archive: new WalArchive(s.store, cluster) }));
        const archive = (archives[0] as (typeof archives)[number]).archive;
        const timeout = parseDuration(opts.timeout);
        if (timeout === undefined)
          throw new RangeError(`--timeout: expected a duration such as 60s, got ${opts.timeout}`);
        const file = configFileOf(deps, opts.config);
        const report = await checkArchive({
          archive,
          connection: await connectionFor(config, deps.env, deps.env.PGDATABASE ?? 'postgres'),
          rpoMs: config.wal.rpo,
          clock: systemClock,
          roundTripMs: opts.roundTrip ? timeout : 0,
          stores: archives,
          unavailable,
          ...(opts.store ? { expectInCommand: opts.store } : file ? { expectInCommand: file } : {}),
        });
        if (opts.json) out(deps, JSON.stringify(report));
        else {
          for (const c of report.checks) out(deps, `${c.ok ? 'ok     ' : 'PROBLEM'} ${c.name}: ${c.detail}`);
          out(
            deps,
            report.ok ? 'WAL archiving works' : `${report.checks.filter((c) => !c.ok).length} problem(s)`,
          );
        }
        if (!report.ok) exit.code = 1;
      },
    );
}
