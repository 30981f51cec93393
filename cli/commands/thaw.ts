import type { Command } from 'commander';
import { InvalidRestoreRequestError } from '../../lib/domain/errors.js';
import { type CliDeps, type CommonOptions, type ExitHolder, out } from '../context.js';

const TIERS = ['Expedited', 'Standard', 'Bulk'] as const;

export function registerThaw(program: Command, deps: CliDeps, _exit: ExitHolder): void {
  program
    .command('thaw')
    .description(
      'Ask S3 to make an archived backup (GLACIER, DEEP_ARCHIVE) readable, and say where that stands',
    )
    .argument('<backup>', 'a backup id, or "latest"')
    .requiredOption('--database <name>', 'the database whose backups to use (configured or not)')
    .option('--tier <tier>', 'Expedited, Standard or Bulk (default from the config)')
    .option('--days <n>', 'days the thawed copy stays readable (default from the config)')
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the state as one JSON object')
    .action(
      async (backup: string, opts: CommonOptions & { database: string; tier?: string; days?: string }) => {
        const [{ resolveConfig, resolveStore }, { parseSelector }, { thawBackup }, { describeThaw }] =
          await Promise.all([
            import('../resolve.js'),
            import('../../lib/catalog/backups.js'),
            import('../../lib/catalog/thaw.js'),
            import('../../lib/catalog/thaw-state.js'),
          ]);
        const selector = parseSelector(opts.database, backup);
        const config = resolveConfig(deps, opts.config);
        const policy = config.defaults.restore;
        const tier = opts.tier ?? policy.thawTier;
        if (!(TIERS as readonly string[]).includes(tier)) {
          throw new InvalidRestoreRequestError(
            `--tier: expected one of ${TIERS.join(', ')}, got ${JSON.stringify(tier)}`,
          );
        }
        const days = opts.days === undefined ? policy.thawDays : Number(opts.days);
        if (!Number.isInteger(days) || days < 1) {
          throw new InvalidRestoreRequestError(
            `--days: expected a whole number of days, got ${JSON.stringify(opts.days)}`,
          );
        }
        const store = await resolveStore(deps, config, opts.store);
        const result = await thawBackup(store, opts.database, selector, { tier, days });
        if (opts.json) {
          const { thaw, ...rest } = result;
          out(
            deps,
            JSON.stringify({
              ...rest,
              state: thaw.state,
              ...('until' in thaw && thaw.until ? { until: thaw.until } : {}),
            }),
          );
          return;
        }
        out(deps, `${result.backupId}: ${result.storageClass}, ${describeThaw(result.thaw)}`);
      },
    );
}
