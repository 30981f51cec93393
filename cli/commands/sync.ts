import type { Command } from 'commander';
import { formatBytes } from '../../lib/domain/units.js';
import { type CliDeps, type ExitHolder, out } from '../context.js';

export function registerSync(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('sync')
    .description(
      'Copy to each store the backups it lacks and the other store holds, verifying every digest (after a degraded run)',
    )
    .option('--database <name>', 'only this database')
    .option('--config <file>', 'stage config file (names the primary and secondary stores)')
    .option('--json', 'print one JSON object per backup copied, skipped or failed')
    .action(async (opts: { database?: string; config?: string; json?: boolean }) => {
      const [{ resolveConfig, resolveStores }, { syncStores }, { storeRetention }, { silentLogger }] =
        await Promise.all([
          import('../resolve.js'),
          import('../../lib/sync/sync.js'),
          import('../../lib/config.js'),
          import('../../lib/platform/logger.js'),
        ]);
      const config = resolveConfig(deps, opts.config);
      if (!config.stores.secondary) {
        out(deps, `one store (${config.store}): nothing to sync; stores.secondary names a second one`);
        return;
      }
      const stores = await resolveStores(deps, config, undefined, 'write');
      const results = await syncStores({
        stores,
        ...(opts.database ? { database: opts.database } : {}),
        rules: (role, database) => storeRetention(config, role, database),
        now: new Date(),
        logger: silentLogger,
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
      if (results.length === 0 && !opts.json) {
        out(deps, `the stores hold the same backups${opts.database ? ` of ${opts.database}` : ''}`);
      }
      if (results.some((r) => r.status === 'failed')) exit.code = 1;
    });
}
