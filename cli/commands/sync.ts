import type { Command } from 'commander';
import { formatBytes } from '../../lib/domain/units.js';
import type { SyncedPhysical } from '../../lib/sync/physical-report.js';
import { type CliDeps, type ExitHolder, out } from '../context.js';

export function registerSync(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('sync')
    .description(
      'Copy to each store the backups and the physical archive (WAL, base backups) it lacks and the other store holds, verifying every digest (after a degraded run)',
    )
    .option('--database <name>', 'only the backups of this database (no physical archive)')
    .option('--cluster <name>', 'only the physical archive of this cluster (no logical backups)')
    .option('--config <file>', 'stage config file (names the primary and secondary stores)')
    .option('--json', 'print one JSON object per backup, WAL file or base backup copied, skipped or failed')
    .action(async (opts: { database?: string; cluster?: string; config?: string; json?: boolean }) => {
      const [
        { resolveConfig, resolveStores },
        { syncStores },
        { syncPhysical },
        { storeRetention },
        { silentLogger },
      ] = await Promise.all([
        import('../resolve.js'),
        import('../../lib/sync/sync.js'),
        import('../../lib/sync/physical.js'),
        import('../../lib/config.js'),
        import('../../lib/platform/logger.js'),
      ]);
      const config = resolveConfig(deps, opts.config);
      if (!config.stores.secondary) {
        out(deps, `one store (${config.store}): nothing to sync; stores.secondary names a second one`);
        return;
      }
      const stores = await resolveStores(deps, config, undefined, 'write');
      const now = new Date();
      const results = opts.cluster
        ? []
        : await syncStores({
            stores,
            ...(opts.database ? { database: opts.database } : {}),
            rules: (role, database) => storeRetention(config, role, database),
            now,
            logger: silentLogger,
          });
      const physical = opts.database
        ? []
        : await syncPhysical({
            stores,
            ...(opts.cluster ? { clusters: [opts.cluster] } : {}),
            windows: () => ({ walMs: config.wal.retention, pitrMs: config.pitr.window }),
            now,
            logger: silentLogger,
            env: deps.env,
          });
      for (const r of results) {
        if (opts.json) {
          out(deps, JSON.stringify(r));
          continue;
        }
        const what = `${r.backupId} ${r.from} → ${r.to}`;
        if (r.status === 'copied')
          out(deps, `copied  ${what} (${formatBytes(r.bytes ?? 0)}, sha256 verified)`);
        else out(deps, `${r.status === 'failed' ? 'FAILED ' : 'skipped'} ${what}: ${r.reason}`);
      }
      if (opts.json) for (const r of physical) out(deps, JSON.stringify(r));
      else await printPhysical(deps, physical);
      if (results.length === 0 && physical.length === 0 && !opts.json) {
        const what = opts.database
          ? `backups of ${opts.database}`
          : opts.cluster
            ? `physical archive of ${opts.cluster}`
            : 'backups and physical archive';
        out(deps, `the stores hold the same ${what}`);
      }
      if ([...results, ...physical].some((r) => r.status === 'failed' || r.status === 'conflict'))
        exit.code = 1;
    });
}

const KIND_NAMES: Record<SyncedPhysical['kind'], string> = {
  segment: 'WAL segment(s)',
  partial: '.partial file(s)',
  backup: '.backup file(s)',
  history: 'history file(s)',
  base: 'base backup(s)',
  archive: 'archive identity',
};

/**
 * One line per cluster, direction, kind and status with its count (a degraded day is hundreds
 * of segments), then one line per file that was not copied, with why.
 */
async function printPhysical(deps: CliDeps, physical: readonly SyncedPhysical[]): Promise<void> {
  const { tallyPhysical } = await import('../../lib/sync/physical-report.js');
  for (const t of tallyPhysical(physical)) {
    const size = t.status === 'copied' ? ` (${formatBytes(t.bytes)}, sha256 verified)` : '';
    const status = t.status === 'failed' ? 'FAILED' : t.status === 'conflict' ? 'CONFLICT' : t.status;
    out(deps, `${t.cluster} ${t.from} → ${t.to}: ${t.count} ${KIND_NAMES[t.kind]} ${status}${size}`);
  }
  for (const r of physical) {
    if (r.status === 'copied') continue;
    const label = r.status === 'failed' ? 'FAILED ' : r.status === 'conflict' ? 'CONFLICT' : 'skipped';
    out(deps, `${label} ${r.cluster} ${r.name} ${r.from} → ${r.to}: ${r.reason}`);
  }
}
