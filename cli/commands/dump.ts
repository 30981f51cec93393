import type { Command } from 'commander';
import { formatBytes } from '../../lib/domain/units.js';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import { type CliDeps, type ExitHolder, out } from '../context.js';
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
        const [{ resolveConfig, resolveStore }, { compressionFromConfig, runDump }, { connectionFor }] =
          await Promise.all([
            import('../resolve.js'),
            import('../../lib/backup/dump.js'),
            import('../../lib/postgres/connection.js'),
          ]);
        const config = resolveConfig(deps, opts.config);
        const store = await resolveStore(deps, config, opts.store, 'write');
        const connection = await connectionFor(config, deps.env, opts.database);
        const progress = progressLine(deps.stderr, !opts.json);
        progress.phase(`dump ${opts.database}`);
        const logger = opts.verbose
          ? createLogger({ command: 'dump' }, { secrets: [connection.password ?? ''] })
          : silentLogger;
        let manifest: Awaited<ReturnType<typeof runDump>>;
        try {
          manifest = await runDump(
            {
              database: opts.database,
              connection,
              store,
              compression: compressionFromConfig(config),
              storageClass: config.storageClass,
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
        if (opts.json) {
          out(deps, JSON.stringify(manifest));
          return;
        }
        out(
          deps,
          `${manifest.id}: ${manifest.tier} backup of ${manifest.database}, ${formatBytes(manifest.sizeBytes)} ${manifest.compression.codec}, ${(manifest.durationMs / 1000).toFixed(1)} s, ${manifest.tables.length} tables → ${store.url}/${manifest.key.slice(store.prefix ? store.prefix.length + 1 : 0)}`,
        );
      },
    );
}
