import type { Command } from 'commander';
import { formatBytes } from '../../lib/domain/units.js';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import { type CliDeps, type ExitHolder, out } from '../context.js';

import { progressLine } from '../progress.js';

export function registerBaseBackup(program: Command, deps: CliDeps, _exit: ExitHolder): void {
  program
    .command('basebackup')
    .description(
      'Take a base backup of the cluster (pg_basebackup, one tar stream through zstd into the store); its manifest is written once its WAL is in the archive',
    )
    .option('--store <url>', 'store URL (s3://bucket/prefix or file:///dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the manifest as one JSON object')
    .option('--verbose', 'structured log lines on stderr')
    .action(async (opts: { store?: string; config?: string; json?: boolean; verbose?: boolean }) => {
      const [{ resolveConfig, resolveStore }, { baseBackupSettings, runBaseBackup }, { connectionFor }] =
        await Promise.all([
          import('../resolve.js'),
          import('../../lib/backup/base-backup.js'),
          import('../../lib/postgres/connection.js'),
        ]);
      const config = resolveConfig(deps, opts.config);
      const settings = baseBackupSettings(config);
      const store = await resolveStore(deps, config, opts.store);
      const connection = await connectionFor(config, deps.env, deps.env.PGDATABASE ?? 'postgres');
      const progress = progressLine(deps.stderr, !opts.json);
      progress.phase(`base backup of ${settings.cluster}`);
      const logger = opts.verbose
        ? createLogger({ command: 'basebackup' }, { secrets: [connection.password ?? ''] })
        : silentLogger;
      let manifest: Awaited<ReturnType<typeof runBaseBackup>>;
      try {
        manifest = await runBaseBackup(
          { ...settings, connection, store },
          { env: deps.env, logger, onProgress: (b) => progress.update(b) },
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
        `${manifest.cluster} base backup ${manifest.id}: timeline ${manifest.timeline}, ${manifest.startLsn} to ${manifest.stopLsn} (WAL ${manifest.startWal} to ${manifest.stopWal}), ${formatBytes(manifest.originalBytes)} stored as ${formatBytes(manifest.sizeBytes)} zstd, ${(manifest.durationMs / 1000).toFixed(1)} s`,
      );
    });
}
