import { execFileSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  asPostgres,
  type ClusterOptions,
  pgBin,
  postgresDir,
  postgresIds,
  type ScratchCluster,
  scratchRoot,
  startCluster,
  writeSettings,
} from './scratch-cluster.js';
import { pgbpCommand } from './wal.js';

/**
 * A scratch cluster that archives its WAL with the real `pgbp wal-push` (archive_command), to a
 * directory store in its own root unless told another store URL, and what goes with it: a plain
 * base backup, and a server recovering from such a backup with `pgbp wal-fetch`.
 */
export interface ArchivingCluster {
  readonly root: string;
  readonly source: ScratchCluster;
  /** The store URL archive_command and restore_command name. */
  readonly url: string;
  /** The directory of a directory store (undefined for S3). */
  readonly storeDir?: string;
  /** What chooses the archive on pgbp's command lines: `--store URL`, or `--config FILE` when given one. */
  readonly archiveArgs: readonly string[];
}

export interface ArchivingOptions {
  /** The store URL; by default a directory store `store/` in the cluster's root. */
  readonly url?: string;
  /** A stage config file for pgbp (`--config`) instead of `--store`; written into the root. */
  readonly config?: (root: string, url: string) => string | Promise<string>;
  readonly walSegmentMb?: number;
  readonly settings?: ClusterOptions['settings'];
}

export async function startArchivingCluster(options: ArchivingOptions = {}): Promise<ArchivingCluster> {
  const root = scratchRoot();
  const storeDir = options.url ? undefined : postgresDir(root, 'store');
  const url = options.url ?? `file://${storeDir}`;
  const config = options.config ? await options.config(root, url) : undefined;
  const archiveArgs = config ? ['--config', config] : ['--store', url];
  const source = await startCluster({
    root,
    ...(options.walSegmentMb !== undefined ? { walSegmentMb: options.walSegmentMb } : {}),
    settings: {
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: pgbpCommand(['wal-push', '%p', ...archiveArgs]),
      ...options.settings,
    },
  });
  return { root, source, url, archiveArgs, ...(storeDir ? { storeDir } : {}) };
}

/**
 * `pg_basebackup -X none` of `cluster` into `dest`, as the postgres OS user: WAL comes from the
 * archive. Its checkpoint is immediate (`-c fast`): a spread one only paces the writes of a test
 * cluster over seconds, and what the backup holds is the same.
 */
export function plainBaseBackup(cluster: ScratchCluster, dest: string): string {
  asPostgres([
    pgBin('pg_basebackup'),
    '-h',
    '127.0.0.1',
    '-p',
    String(cluster.port),
    '-U',
    'postgres',
    '-D',
    dest,
    '-X',
    'none',
    '--checkpoint=fast',
    '--no-sync',
  ]);
  return dest;
}

/**
 * A server on a copy of `backup` named `name` (or on `backup` itself when no name is given), set
 * to recover with `restoreCommand` (pgbp wal-fetch of the same archive by default), not started:
 * the caller starts it. It lives in the source's root (and shares its log file).
 */
export async function recoveringCluster(
  archiving: ArchivingCluster,
  backup: string,
  options: { readonly name?: string; readonly restoreCommand?: string } = {},
): Promise<ScratchCluster> {
  const data = options.name ? join(archiving.root, options.name) : backup;
  if (options.name) cpSync(backup, data, { recursive: true });
  writeSettings(data, {
    archive_mode: 'off',
    restore_command:
      options.restoreCommand ?? pgbpCommand(['wal-fetch', '%f', '%p', ...archiving.archiveArgs]),
  });
  writeFileSync(join(data, 'recovery.signal'), '');
  const { uid, gid } = postgresIds();
  execFileSync('chown', ['-R', `${uid}:${gid}`, data]);
  return startCluster({ root: archiving.root, data, start: false });
}
