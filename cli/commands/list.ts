import type { Command } from 'commander';
import { formatBytes } from '../../lib/domain/units.js';
import type { BackupStore } from '../../lib/storage/store.js';
import { type CliDeps, type ExitHolder, out } from '../context.js';

/** What the last restore check of a backup found: its report says whether every check passed. */
async function checkOutcome(store: BackupStore, key: string): Promise<string> {
  const { readVerifyOutcome } = await import('../../lib/catalog/verify-reports.js');
  const outcome = await readVerifyOutcome(store, key);
  if (!outcome) return 'check report unreadable';
  return outcome.passed ? 'verified' : 'CHECK FAILED';
}

export function registerList(program: Command, deps: CliDeps, _exit: ExitHolder): void {
  program
    .command('list')
    .description('List the backups in the store, newest first')
    .option('--database <name>', 'only this database')
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print a JSON array of manifests')
    .action(async (opts: { database?: string; store?: string; config?: string; json?: boolean }) => {
      const [{ resolveConfig, resolveStore }, { listBackups }] = await Promise.all([
        import('../resolve.js'),
        import('../../lib/catalog/backups.js'),
      ]);
      const config = resolveConfig(deps, opts.config);
      const store = await resolveStore(deps, config, opts.store);
      const backups = await listBackups(store, opts.database);
      if (opts.json) {
        out(deps, JSON.stringify(backups.map((b) => b.manifest)));
        return;
      }
      if (backups.length === 0) {
        out(deps, `no backups${opts.database ? ` of ${opts.database}` : ''} in ${store.url}`);
        return;
      }
      for (const { manifest: m, verifyObject } of backups) {
        out(
          deps,
          [
            m.id,
            m.tier.padEnd(7),
            formatBytes(m.sizeBytes).padStart(10),
            m.compression.codec,
            m.storageClass,
            verifyObject ? await checkOutcome(store, verifyObject.key) : '',
          ]
            .join('  ')
            .trimEnd(),
        );
      }
    });
}
