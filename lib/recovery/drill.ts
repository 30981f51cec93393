import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { RestoreCheckFailedError } from '../domain/errors.js';
import { baseBackupKeys } from '../domain/physical-layout.js';
import { describeFailedChecks } from '../domain/restore-checks.js';
import type { Logger } from '../platform/logger.js';
import type { Connection } from '../postgres/pg-tools.js';
import type { BackupStore } from '../storage/store.js';
import type { RoleStore } from '../storage/store-roles.js';
import { type RecoveryReport, recover } from './recover.js';

/**
 * The point-in-time recovery drill: the newest base backup recovered with the whole archive
 * (`latest`) into scratch storage, started on a free loopback port with archiving off (a drill
 * must not add a timeline to the archive it proves), checked with the configured assertions,
 * its report (RTO, recovery point reached, target, base backup, segments replayed) stored
 * beside the base backup as `<baseId>.drill.json`, then stopped and removed.
 */

export interface PitrDrillRequest {
  readonly config: Config;
  readonly store: BackupStore;
  /** The primary and secondary stores, nearest first: the drill reads the nearest good copy. */
  readonly stores?: readonly RoleStore[];
  /** Who connects to the recovered server (the source's roles): user and password. */
  readonly connection: Connection;
  /** restore_command for the recovered server. */
  readonly restoreCommand: string;
}

export interface PitrDrillDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
}

export interface PitrDrillReport extends RecoveryReport {
  readonly kind: 'pitr-drill';
  readonly reportKey: string;
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function runPitrDrill(request: PitrDrillRequest, deps: PitrDrillDeps): Promise<PitrDrillReport> {
  const { config, store } = request;
  const cluster = config.wal?.cluster;
  if (!cluster)
    throw new Error('wal.cluster is not set: the drill needs the cluster whose archive it proves');
  const scratch = await mkdtemp(join(config.pitr.scratchDir ?? tmpdir(), 'pgbp-pitr-drill-'));
  const isRoot = process.getuid?.() === 0;
  try {
    await chmod(scratch, 0o700);
    if (isRoot) {
      const id = (flag: string) =>
        Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
      await chown(scratch, id('-u'), id('-g'));
    }
    const port = await freeLoopbackPort();
    const report = await recover(
      {
        cluster,
        store,
        ...(request.stores ? { stores: request.stores } : {}),
        pgdata: join(scratch, 'data'),
        target: { kind: 'latest' },
        restoreCommand: request.restoreCommand,
        settings: {
          archive_mode: 'off',
          listen_addresses: '127.0.0.1',
          unix_socket_directories: scratch,
        },
        start: {
          port,
          connection: request.connection,
          timeoutMs: config.pitr.recoveryTimeout,
          assertions: config.databases.map((d) => ({ database: d.name, assertions: d.assertions })),
          stopAfter: true,
        },
      },
      { env: deps.env, logger: deps.logger },
    );
    // Beside the copy the drill read.
    const used = request.stores?.find((s) => s.store.url === report.copy?.url)?.store ?? store;
    const reportKey = baseBackupKeys(used.prefix, cluster, report.baseId).drillReport;
    const drill: PitrDrillReport = { kind: 'pitr-drill', ...report, reportKey };
    await used.putBytes(reportKey, `${JSON.stringify(drill, null, 2)}\n`, {
      contentType: 'application/json',
      replace: true,
    });
    if (!drill.passed) {
      throw new RestoreCheckFailedError(
        `the point-in-time recovery of cluster ${cluster} from base backup ${report.baseId} failed its checks: ${describeFailedChecks(report.checks)}`,
      );
    }
    return drill;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
