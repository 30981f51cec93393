import type { Command } from 'commander';
import { describeFailedCopies, isDegraded } from '../../lib/domain/store-roles.js';
import { formatBytes } from '../../lib/domain/units.js';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import type { RoleStore } from '../../lib/storage/store-roles.js';
import { type CliDeps, type ExitHolder, err, out } from '../context.js';
import { progressLine } from '../progress.js';

export function registerDump(program: Command, deps: CliDeps, _exit: ExitHolder): void {
  program
    .command('dump')
    .description('Dump one database into the store and write its manifest')
    .requiredOption('--database <name>', 'database to dump (configured or not)')
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the manifest as one JSON object')
    .option('--verbose', 'structured log lines on stderr')
    .action(
      async (opts: {
        database: string;
        store?: string;
        config?: string;
        json?: boolean;
        verbose?: boolean;
      }) => {
        const [
          { resolveConfig, resolveStores },
          { compressionFromConfig, runDumpToStores },
          { connectionFor },
        ] = await Promise.all([
          import('../resolve.js'),
          import('../../lib/backup/dump.js'),
          import('../../lib/postgres/connection.js'),
        ]);
        const config = resolveConfig(deps, opts.config);
        const [primary, secondary] = await resolveStores(deps, config, opts.store, 'write');
        if (!primary) throw new Error('no store configured');
        const store = primary.store;
        const connection = await connectionFor(config, deps.env, opts.database);
        const progress = progressLine(deps.stderr, !opts.json);
        progress.phase(`dump ${opts.database}`);
        const logger = opts.verbose
          ? createLogger({ command: 'dump' }, { secrets: [connection.password ?? ''] })
          : silentLogger;
        let result: Awaited<ReturnType<typeof runDumpToStores>>;
        try {
          result = await runDumpToStores(
            {
              database: opts.database,
              connection,
              store,
              compression: compressionFromConfig(config),
              storageClass: primary.storageClass,
              ...(secondary ? { secondary } : {}),
            },
            {
              env: deps.env,
              logger,
              onProgress: (b) => progress.update(b),
              ...(deps.signal ? { signal: deps.signal } : {}),
            },
          );
        } finally {
          progress.done();
        }
        const { manifest, copies } = result;
        const degraded = isDegraded(copies);
        // A degraded dump is a backup (exit 0), said plainly on stderr: one store lacks it until `pgbp sync`.
        for (const line of describeFailedCopies(copies)) {
          err(
            deps,
            `DEGRADED: ${manifest.id} not stored in the ${line}; pgbp sync --database ${manifest.database} copies it once the store is back`,
          );
        }
        if (opts.json) {
          out(deps, JSON.stringify(secondary ? { ...manifest, copies, degraded } : manifest));
          return;
        }
        const where = copies
          .filter((c) => c.status === 'stored')
          .map((c) =>
            c.status === 'stored'
              ? `${c.url.replace(/\/$/, '')}/${c.key.slice(storePrefixLength(c.url, [primary, secondary]))}`
              : '',
          )
          .join(' and ');
        out(
          deps,
          `${manifest.id}: ${manifest.tier} backup of ${manifest.database}, ${formatBytes(manifest.sizeBytes)} ${manifest.compression.codec}, ${(manifest.durationMs / 1000).toFixed(1)} s, ${manifest.tables.length} tables → ${where}${degraded ? ' (degraded)' : ''}`,
        );
      },
    );
}

/** How much of a key is the store's prefix (and its slash), for printing a key under its store's URL. */
function storePrefixLength(url: string, stores: readonly (RoleStore | undefined)[]): number {
  const prefix = stores.find((s) => s?.store.url === url)?.store.prefix ?? '';
  return prefix ? prefix.length + 1 : 0;
}
