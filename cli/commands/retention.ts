import type { Command } from 'commander';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import type { PhysicalRetentionReport } from '../../lib/retention/physical.js';
import type { RetentionReport } from '../../lib/retention/run.js';
import { type CliDeps, type ExitHolder, err, out } from '../context.js';

function printReport(deps: CliDeps, r: RetentionReport): void {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  out(
    deps,
    `${r.database}${r.role ? ` (${r.role} store ${r.store})` : ''}: keep ${r.kept.length}, ${verb} ${r.remove.length} backup${r.remove.length === 1 ? '' : 's'} and ${r.debris.remove.length} debris${r.dryRun ? ' (dry run)' : ''}`,
  );
  if (r.defaults) out(deps, `  ${r.database} is not configured: the default retention applies`);
  if (r.blocked) out(deps, `  blocked: nothing deleted because ${r.blocked}`);
  for (const k of r.kept) {
    const lock = k.lock
      ? ` (locked: ${k.lock.key}${k.lock.retainUntil ? ` until ${k.lock.retainUntil}` : ''}${k.lock.legalHold ? ', legal hold' : ''})`
      : '';
    out(deps, `  keep    ${k.id}  ${k.tier.padEnd(7)}  ${k.reasons.join(', ')}${lock}`);
  }
  for (const b of r.remove) out(deps, `  delete  ${b.id}  ${b.tier.padEnd(7)}  ${b.keys.length} objects`);
  for (const key of r.debris.remove) out(deps, `  debris  ${key}`);
  for (const d of r.debris.kept) out(deps, `  debris  ${d.key}  kept: ${d.reason}`);
  for (const t of r.tagRepairs)
    out(deps, `  tag     ${t.key}  tier=${t.tier}${r.dryRun ? ' (would repair)' : ' (repaired)'}`);
  for (const b of r.broken) out(deps, `  broken  ${b.key}  ${b.reason}`);
  for (const f of r.failed) err(deps, `pgbp: could not delete ${f.key}: ${f.code} ${f.message}`);
}

function printPhysical(deps: CliDeps, r: PhysicalRetentionReport): void {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  out(
    deps,
    `cluster ${r.cluster}: keep ${r.keptBases.length} base backup${r.keptBases.length === 1 ? '' : 's'} and ${r.wal.kept} WAL files, ${verb} ${r.removedBases.length} base backup${r.removedBases.length === 1 ? '' : 's'} and ${r.wal.removed} WAL files${r.dryRun ? ' (dry run)' : ''}`,
  );
  if (r.blocked) out(deps, `  blocked: nothing deleted because ${r.blocked}`);
  for (const b of r.keptBases) out(deps, `  keep    base ${b.id}  ended ${b.stopTime}`);
  for (const b of r.removedBases) out(deps, `  delete  base ${b.id}  ended ${b.stopTime}`);
  for (const [tl, name] of Object.entries(r.keepFrom))
    out(deps, `  keep    WAL of timeline ${tl} from ${name} on`);
  for (const d of r.debris.removed)
    out(deps, `  debris  base ${d.id}  ${d.objects} object${d.objects === 1 ? '' : 's'}, no manifest`);
  for (const d of r.debris.kept)
    out(deps, `  debris  base ${d.id}  kept: ${d.reason}${d.lockedKey ? ` (locked: ${d.lockedKey})` : ''}`);
  for (const b of r.broken) out(deps, `  broken  ${b.key}  ${b.error}`);
  for (const f of r.failed) err(deps, `pgbp: could not delete ${f.key}: ${f.code} ${f.message}`);
}

export function registerRetention(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('retention')
    .description(
      "Apply the grandfather-father-son retention plan and the physical archive's (base backups and WAL), or preview them with --dry-run",
    )
    .option(
      '--database <name>',
      'only this database, and not the physical archive (default: the configured ones)',
    )
    .option('--dry-run', 'print the plan and delete nothing')
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the plan or result as JSON')
    .option('--verbose', 'structured log lines on stderr')
    .action(
      async (opts: {
        database?: string;
        dryRun?: boolean;
        store?: string;
        config?: string;
        json?: boolean;
        verbose?: boolean;
      }) => {
        const [
          { resolveConfig, resolveStores },
          { retentionDatabases, runRetention },
          { runPhysicalRetention },
          { storeRetention },
        ] = await Promise.all([
          import('../resolve.js'),
          import('../../lib/retention/run.js'),
          import('../../lib/retention/physical.js'),
          import('../../lib/config.js'),
        ]);
        const config = resolveConfig(deps, opts.config);
        const stores = await resolveStores(deps, config, opts.store);
        const store = (stores[0] as (typeof stores)[number]).store;
        const logger = opts.verbose ? createLogger({ command: 'retention' }) : silentLogger;
        const now = new Date();
        const reports: RetentionReport[] = [];
        // Each store by its own rules (stores.<role>.retention over the database's).
        for (const { role, store: each } of stores) {
          const databases = opts.database ? [opts.database] : await retentionDatabases(each, config);
          for (const database of databases) {
            reports.push(
              await runRetention({
                store: each,
                config,
                database,
                now,
                dryRun: opts.dryRun ?? false,
                logger,
                ...(stores.length > 1 ? { role, rules: storeRetention(config, role, database) } : {}),
              }),
            );
          }
        }
        const physical = opts.database
          ? undefined
          : await runPhysicalRetention({
              store,
              config,
              now,
              dryRun: opts.dryRun ?? false,
              logger,
              env: deps.env,
            });
        if (opts.json)
          out(
            deps,
            JSON.stringify({
              dryRun: opts.dryRun ?? false,
              databases: reports,
              ...(physical ? { physical } : {}),
            }),
          );
        else {
          if (reports.length === 0) out(deps, `no databases to apply retention to in ${store.url}`);
          for (const r of reports) printReport(deps, r);
          if (physical) printPhysical(deps, physical);
        }
        // 1: some deletes failed; 2: retention was blocked (a stale database), as `pgbp status` reports it.
        if (reports.some((r) => r.failed.length > 0) || (physical?.failed.length ?? 0) > 0) exit.code = 1;
        else if (reports.some((r) => r.blocked && r.watched)) exit.code = 2;
      },
    );
}
