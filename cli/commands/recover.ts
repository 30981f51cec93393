import type { Command } from 'commander';
import type { RecoveryTarget } from '../../lib/domain/base-backup.js';
import { InvalidRestoreRequestError } from '../../lib/domain/errors.js';
import { describeCopyUsed } from '../../lib/domain/store-roles.js';
import { parseLsn } from '../../lib/domain/wal-names.js';
import { createLogger, silentLogger } from '../../lib/platform/logger.js';
import type { RecoveryReport } from '../../lib/recovery/recover.js';
import { type CliDeps, type ExitHolder, err, out } from '../context.js';

interface RecoverOptions {
  pgdata: string;
  targetTime?: string;
  targetXid?: string;
  targetLsn?: string;
  targetName?: string;
  latest?: boolean;
  base?: string;
  start?: boolean;
  port?: string;
  osUser?: string;
  store?: string;
  from?: string;
  config?: string;
  json?: boolean;
  verbose?: boolean;
}

/** The one target given; anything else is a usage error naming what was wrong. */
export function targetOf(opts: RecoverOptions): RecoveryTarget {
  const given = [
    opts.targetTime !== undefined && 'time',
    opts.targetXid !== undefined && 'xid',
    opts.targetLsn !== undefined && 'lsn',
    opts.targetName !== undefined && 'name',
    opts.latest && 'latest',
  ].filter(Boolean);
  if (given.length !== 1) {
    throw new InvalidRestoreRequestError(
      `give exactly one of --target-time, --target-xid, --target-lsn, --target-name, --latest (got ${given.length === 0 ? 'none' : given.join(', ')})`,
    );
  }
  if (opts.targetTime !== undefined) {
    // A time without a zone would be read in the server's zone: ask for one.
    const ms = /([zZ]|[+-]\d\d(:?\d\d)?)$/.test(opts.targetTime.trim())
      ? Date.parse(opts.targetTime)
      : Number.NaN;
    if (Number.isNaN(ms)) {
      throw new InvalidRestoreRequestError(
        `--target-time ${JSON.stringify(opts.targetTime)}: expected a time with its zone, such as 2026-06-20T15:00:00+03:00 or 2026-06-20T12:00:00Z`,
      );
    }
    return { kind: 'time', time: new Date(ms) };
  }
  if (opts.targetXid !== undefined) {
    if (!/^\d+$/.test(opts.targetXid)) {
      throw new InvalidRestoreRequestError(
        `--target-xid ${JSON.stringify(opts.targetXid)}: expected a transaction id (digits)`,
      );
    }
    return { kind: 'xid', xid: opts.targetXid };
  }
  if (opts.targetLsn !== undefined) {
    const lsn = parseLsn(opts.targetLsn);
    if (lsn === undefined) {
      throw new InvalidRestoreRequestError(
        `--target-lsn ${JSON.stringify(opts.targetLsn)}: expected an LSN such as 0/3000028`,
      );
    }
    return { kind: 'lsn', lsn };
  }
  if (opts.targetName !== undefined) {
    if (opts.targetName === '') throw new InvalidRestoreRequestError('--target-name is empty');
    return { kind: 'name', name: opts.targetName };
  }
  return { kind: 'latest' };
}

function summary(r: RecoveryReport): string[] {
  const lines = [
    `recovered cluster ${r.cluster} into ${r.pgdata} from base backup ${r.baseId} (consistent from ${r.baseStopTime}), target ${r.target}; the archive reaches ${r.reachable.lsn}`,
  ];
  if (!r.started) {
    lines.push(`start it with: ${r.startWith}`);
    return lines;
  }
  lines.push(
    `promoted on timeline ${r.timeline} at ${r.promotedAt}; recovery point reached: ${r.recoveryPoint ?? 'no transaction replayed'}${r.stoppedAt ? ` (${r.stoppedAt})` : ''}; ${r.segmentsReplayed} WAL segments replayed; RTO ${r.rtoSeconds?.toFixed(1)} s`,
  );
  for (const c of r.checks)
    lines.push(`  ${c.passed ? 'ok  ' : 'FAIL'} ${c.name}${c.value !== undefined ? `: ${c.value}` : ''}`);
  lines.push(`the server runs on port ${r.port}`);
  return lines;
}

export function registerRecover(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('recover')
    .description(
      'Point-in-time recovery of the cluster into a new or empty data directory: base backup, WAL from the archive, promote',
    )
    .requiredOption('--pgdata <dir>', 'the data directory to create (new or empty)')
    .option('--target-time <time>', 'recover to this time (with its zone)')
    .option('--target-xid <xid>', 'recover to this transaction')
    .option('--target-lsn <lsn>', 'recover to this WAL position')
    .option('--target-name <name>', 'recover to this restore point (pg_create_restore_point)')
    .option('--latest', 'recover everything archived, following the newest timeline')
    .option('--base <id>', 'start from this base backup (default: the newest that ends before the target)')
    .option('--start', 'start the server, wait until it promotes, run the configured assertions')
    .option('--port <port>', 'the port of the started server', '5432')
    .option('--os-user <user>', 'when run as root: the OS user the server runs as', 'postgres')
    .option('--store <url>', 'store URL (s3://bucket/prefix or file:///dir), overrides the config')
    .option(
      '--from <store>',
      'read the base backup from this store only: primary or secondary (the NAS lost: secondary); its wal-fetch reads it only too (default: the nearest good copy, primary first, and wal-fetch reading both)',
    )
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the report as one JSON object')
    .option('--verbose', 'structured log lines on stderr')
    .action(async (opts: RecoverOptions) => {
      const [
        { configFileOf, resolveConfig, resolveReadableStores },
        { connectionFor },
        { recover },
        { restoreCommandFor },
      ] = await Promise.all([
        import('../resolve.js'),
        import('../../lib/postgres/connection.js'),
        import('../../lib/recovery/recover.js'),
        import('../../lib/recovery/restore-command.js'),
      ]);
      const target = targetOf(opts);
      const config = resolveConfig(deps, opts.config);
      const configFile = configFileOf(deps, opts.config);
      if (!configFile) {
        throw new InvalidRestoreRequestError(
          'recover needs a config file (--config FILE): the server runs pgbp wal-fetch with it as its restore_command',
        );
      }
      const cluster = config.wal?.cluster;
      if (!cluster) throw new InvalidRestoreRequestError(`${configFile}: wal.cluster is not set`);
      // --from names a configured store by its role; the recovered server's wal-fetch reads that one.
      const fromUrl =
        opts.from === undefined
          ? undefined
          : opts.from === 'primary' || opts.from === 'secondary'
            ? (opts.from === 'primary' ? config.stores.primary : config.stores.secondary)?.url
            : undefined;
      if (opts.from !== undefined && !fromUrl) {
        throw new InvalidRestoreRequestError(
          opts.from === 'secondary'
            ? `--from secondary: ${configFile} names no stores.secondary`
            : `--from: expected primary or secondary, got ${JSON.stringify(opts.from)}`,
        );
      }
      const storeUrl = opts.store ?? fromUrl;
      const from = opts.from as 'primary' | 'secondary' | undefined;
      // The configured stores, nearest first (one that cannot be opened is passed over), or the one asked for.
      const { stores, unavailable } = await resolveReadableStores(deps, config, opts.store, from);
      const store = (stores[0] as (typeof stores)[number]).store;
      const port = Number(opts.port);
      if (opts.start && (!Number.isInteger(port) || port < 1 || port > 65535)) {
        throw new InvalidRestoreRequestError(`--port ${JSON.stringify(opts.port)}: expected a port number`);
      }
      const connection = await connectionFor(config, deps.env, 'postgres');
      const logger = opts.verbose ? createLogger({ command: 'recover' }) : silentLogger;
      const report = await recover(
        {
          cluster,
          store,
          stores,
          unavailable,
          ...(from && !opts.store ? { from } : {}),
          pgdata: opts.pgdata,
          target,
          ...(opts.base ? { baseId: opts.base } : {}),
          // Without --store or --from, wal-fetch reads both configured stores (the config), nearest first.
          restoreCommand: restoreCommandFor(deps.env, configFile, storeUrl ? store.url : undefined),
          ...(opts.osUser ? { osUser: opts.osUser } : {}),
          ...(opts.start
            ? {
                start: {
                  port,
                  connection,
                  timeoutMs: config.pitr.recoveryTimeout,
                  assertions: config.databases.map((d) => ({ database: d.name, assertions: d.assertions })),
                },
              }
            : {}),
        },
        { env: deps.env, logger },
      );
      // Which copy was read, and why another was passed over: said whenever there was a choice.
      if (report.copy) err(deps, `base backup ${report.baseId}: ${describeCopyUsed(report.copy)}`);
      if (opts.json) out(deps, JSON.stringify(report));
      else for (const line of summary(report)) out(deps, line);
      if (!report.passed) exit.code = 1;
    });
}
