import type { Command } from 'commander';
import { describeFailedCopies, isDegraded } from '../../lib/domain/store-roles.js';
import { formatBytes } from '../../lib/domain/units.js';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import { type CliDeps, type ExitHolder, err, out } from '../context.js';

import { progressLine } from '../progress.js';

export function registerBaseBackup(program: Command, deps: CliDeps, _exit: ExitHolder): void {
  program
    .command('basebackup')
    .description(
      "Take a base backup of the cluster (pg_basebackup, one tar stream through zstd into the store, or both stores); each copy's manifest is written once its WAL is in that store's archive",
    )
    .option('--store <url>', 'store URL (s3://bucket/prefix or file:///dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the manifest as one JSON object')
    .option('--verbose', 'structured log lines on stderr')
    .action(async (opts: { store?: string; config?: string; json?: boolean; verbose?: boolean }) => {
      const [
        { resolveConfig, resolveStores },
        { baseBackupSettings, runBaseBackupToStores },
        { connectionFor },
      ] = await Promise.all([
        import('../resolve.js'),
        import('../../lib/backup/base-backup.js'),
        import('../../lib/postgres/connection.js'),
      ]);
      const config = resolveConfig(deps, opts.config);
      const settings = baseBackupSettings(config);
      const [primary, secondary] = await resolveStores(deps, config, opts.store, 'write');
      if (!primary) throw new Error('no store configured');
      const connection = await connectionFor(config, deps.env, deps.env.PGDATABASE ?? 'postgres');
      const progress = progressLine(deps.stderr, !opts.json);
      progress.phase(`base backup of ${settings.cluster} (compressed)`);
      const logger = opts.verbose
        ? createLogger({ command: 'basebackup' }, { secrets: [connection.password ?? ''] })
        : silentLogger;
      let result: Awaited<ReturnType<typeof runBaseBackupToStores>>;
      try {
        result = await runBaseBackupToStores(
          {
            ...settings,
            connection,
            store: primary.store,
            storageClass: primary.storageClass,
            ...(secondary ? { secondary } : {}),
          },
          { env: deps.env, logger, onProgress: (b) => progress.update(b) },
        );
      } finally {
        progress.done();
      }
      const { manifest, copies } = result;
      const degraded = isDegraded(copies);
      // A degraded base backup is a base backup (exit 0), said plainly on stderr.
      for (const line of describeFailedCopies(copies)) {
        err(
          deps,
          `DEGRADED: base backup ${manifest.id} not stored in the ${line}; pgbp sync --cluster ${manifest.cluster} copies it once the store is back`,
        );
      }
      if (opts.json) {
        out(deps, JSON.stringify(secondary ? { ...manifest, copies, degraded } : manifest));
        return;
      }
      out(
        deps,
        `${manifest.cluster} base backup ${manifest.id}: timeline ${manifest.timeline}, ${manifest.startLsn} to ${manifest.stopLsn} (WAL ${manifest.startWal} to ${manifest.stopWal}), ${formatBytes(manifest.originalBytes)} stored as ${formatBytes(manifest.sizeBytes)} zstd, ${(manifest.durationMs / 1000).toFixed(1)} s${
          secondary
            ? ` in ${copies
                .filter((c) => c.status === 'stored')
                .map((c) => `the ${c.role} store`)
                .join(' and ')}${degraded ? ' (degraded)' : ''}`
            : ''
        }`,
      );
    });
}
