import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import {
  BASE_MANIFEST_VERSION,
  type BaseManifest,
  baseBackupIdFor,
  baseBackupLabel,
  parseBaseManifest,
  segmentsBetween,
  zstdSummarySizes,
} from '../domain/base-backup.js';
import { BaseBackupFailedError, ConfigError, PipelineError } from '../domain/errors.js';
import { baseBackupKeys, isClusterName } from '../domain/physical-layout.js';
import { redact } from '../domain/redact.js';
import { formatLsn } from '../domain/wal-names.js';
import type { Logger } from '../platform/logger.js';
import {
  type Child,
  describeExit,
  exitedCleanly,
  ownFailure,
  type Spawn,
  startChildInto,
} from '../platform/processes.js';
import { type Connection, describeConnection, libpqEnv } from '../postgres/pg-tools.js';
import { openChildOutput } from '../storage/child-output.js';
import { type BackupStore, encryptionOf } from '../storage/store.js';
import { startZstd } from '../storage/zstd.js';
import {
  BUILT_IN_TABLESPACES,
  deadlineIn,
  serverFacts,
  waitForBackupHistory,
  waitForWal,
} from './base-backup-checks.js';

/**
 * A physical base backup: pg_basebackup writes the data directory as one tar stream (`-Ft -D -`,
 * no WAL: the archive has it; PostgreSQL's backup_manifest is its last member) straight into
 * zstd, as a shell pipe would: the raw stream never passes through this process, which reads only
 * zstd's output, into the store with its SHA-256. Nothing of the cluster is copied to local disk.
 * What the backup is comes from the server: its system identifier before it starts, its start and
 * stop position and timeline from the backup history file the server archives at its end (under
 * our label). The base backup exists once its manifest is written, which happens only after the
 * WAL from its start to its stop position is found in the archive.
 */

export interface BaseBackupRequest {
  /** The archive's name in the store (config `wal.cluster`). */
  readonly cluster: string;
  readonly connection: Connection;
  readonly store: BackupStore;
  readonly compression: { readonly level: number; readonly threads: number };
  readonly checkpoint: 'fast' | 'spread';
  /** How long the WAL up to the backup's stop position may take to appear in the archive. */
  readonly walWaitMs: number;
  readonly storageClass: string;
}

export interface BaseBackupDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
  readonly clock?: () => Date;
  readonly spawn?: Spawn;
  /** How often the archive is listed while waiting for the WAL. */
  readonly pollMs?: number;
  /** Running count of the compressed bytes stored, for progress. */
  readonly onProgress?: (bytes: number) => void;
}

/** The base backup settings of a stage config; a config without `wal.cluster` cannot take one. */
export function baseBackupSettings(
  config: Config,
): Pick<BaseBackupRequest, 'cluster' | 'compression' | 'checkpoint' | 'walWaitMs' | 'storageClass'> {
  const cluster = config.wal?.cluster;
  if (!cluster) {
    throw new ConfigError(
      'wal.cluster is not set: name the cluster whose WAL archive and base backups live in the store',
    );
  }
  return {
    cluster,
    compression: { level: config.basebackup.level, threads: config.basebackup.threads },
    checkpoint: config.basebackup.checkpoint,
    walWaitMs: config.basebackup.walWait,
    storageClass: config.storageClass,
  };
}

/** Takes one base backup of the server into the store; returns its manifest (written last). */
export async function runBaseBackup(request: BaseBackupRequest, deps: BaseBackupDeps): Promise<BaseManifest> {
  const { cluster, connection, store } = request;
  const clock = deps.clock ?? (() => new Date());
  const secrets = [connection.password];
  if (!isClusterName(cluster)) {
    throw new ConfigError(`cluster name ${JSON.stringify(cluster)}: use letters, digits, _ . - (at most 63)`);
  }
  const env = libpqEnv(connection, deps.env);
  const log = deps.logger.child({ cluster });

  const facts = await serverFacts(connection).catch((cause: unknown) => {
    throw new BaseBackupFailedError(
      `cannot connect to ${describeConnection(connection)}: ${redact((cause as Error).message, secrets)}`,
      { cause },
    );
  });
  if (facts.tablespaces.length > 0) {
    throw new BaseBackupFailedError(
      `the cluster has tablespaces outside its data directory: ${facts.tablespaces
        .map((t) => `${t.name} (${t.location})`)
        .join(
          ', ',
        )}; a base backup here is one tar stream of the data directory, which would leave them out. Move their objects to pg_default (ALTER TABLE … SET TABLESPACE pg_default) or back the cluster up with pg_basebackup -Ft into a directory`,
    );
  }
  if (facts.inRecovery || !facts.currentWal) {
    throw new BaseBackupFailedError(
      `${describeConnection(connection)} is a standby: take base backups from the primary, whose backup history file (archived at the backup's end) tells where the backup starts and stops`,
    );
  }
  if (facts.archiveMode === 'off') {
    throw new BaseBackupFailedError(
      `archive_mode is off on ${describeConnection(connection)}: a base backup cannot be recovered without the WAL archive (set archive_mode = on and archive_command = 'pgbp wal-push %p')`,
    );
  }

  const startedAt = clock();
  startedAt.setUTCMilliseconds(0);
  const id = baseBackupIdFor(startedAt);
  const keys = baseBackupKeys(store.prefix, cluster, id);
  const tarKey = keys.tar('base');
  const started = Date.now();
  log.info('base backup starting', { baseId: id, server: facts.version });

  // The key first: one that cannot be used fails the base backup before any object exists.
  await store.capabilities.envelope?.ready();
  const output = await openChildOutput(
    store,
    tarKey,
    'sequential',
    { storageClass: request.storageClass },
    (cause) => new BaseBackupFailedError((cause as Error).message, { cause }),
  );
  let zstdSummary: ReturnType<typeof zstdSummarySizes>;
  const zstd = startZstd(request.compression, {
    env,
    stdin: 'pipe',
    stdout: output.childEnd,
    onSummaryLine: (line) => {
      zstdSummary = zstdSummarySizes(line) ?? zstdSummary;
    },
    ...(deps.spawn ? { spawn: deps.spawn } : {}),
  });
  output.release();
  let archiveWait: NodeJS.Timeout | undefined;
  let archiveStuck = false;
  const children: Child[] = [zstd];
  const label = baseBackupLabel(id);
  const basebackup = startChildInto(
    zstd,
    'pg_basebackup',
    [
      '--pgdata=-',
      '--format=tar',
      '--wal-method=none',
      `--checkpoint=${request.checkpoint}`,
      `--label=${label}`,
      '--no-password',
    ],
    {
      env,
      secrets,
      // The server does not end a backup before its WAL is archived (pg_backup_stop): a failing
      // archive_command would hold pg_basebackup forever. The wait gets the same deadline as ours.
      onStderrLine: (line) => {
        if (archiveWait || !/waiting for (all )?required WAL segments to be archived/i.test(line)) return;
        archiveWait = setTimeout(() => {
          archiveStuck = true;
          for (const child of children) child.stop();
        }, request.walWaitMs);
        archiveWait.unref();
      },
      ...(deps.spawn ? { spawn: deps.spawn } : {}),
    },
  );
  children.unshift(basebackup);

  const finished = (async () => {
    const exits = await Promise.all([basebackup.exited, zstd.exited]);
    if (archiveWait) clearTimeout(archiveWait);
    if (archiveStuck) {
      throw new BaseBackupFailedError(
        `the server waited ${Math.round(request.walWaitMs / 1000)} s for the backup's WAL to be archived, in vain: archive_command is failing or behind on ${describeConnection(connection)} (see the server's log); nothing was kept`,
      );
    }
    const cause = ownFailure(exits) ?? exits.find((e) => !exitedCleanly(e));
    if (cause) throw new BaseBackupFailedError(describeExit(cause));
    if (!zstdSummary) {
      throw new BaseBackupFailedError(
        `zstd did not report the size of the tar stream it compressed: ${exits[1].stderr || 'it said nothing'}`,
      );
    }
  })();
  finished.catch(() => {});

  const hash = createHash('sha256');
  let sizeBytes: number;
  let sha256: string | undefined;
  try {
    ({ bytes: sizeBytes, sha256 } = await output.store(
      finished,
      hash,
      deps.onProgress ? { onProgress: deps.onProgress } : {},
    ));
    await finished;
  } catch (error) {
    for (const child of children) child.stop();
    await Promise.all(children.map((c) => c.exited));
    await output.abort();
    const processFailure = await finished.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    if (processFailure) throw processFailure;
    if (error instanceof PipelineError) throw error;
    throw new BaseBackupFailedError(
      `storing ${tarKey} in ${store.url} failed: ${redact((error as Error).message, secrets)}`,
      { cause: error },
    );
  }
  const originalBytes = zstdSummary?.read ?? 0;

  const stored: string[] = [tarKey];
  const discard = async () => {
    await store.deleteMany(stored).catch(() => {});
  };
  try {
    const stopTime = clock();
    const head = await store.head(tarKey);
    if (head?.size !== sizeBytes) {
      throw new BaseBackupFailedError(
        `stored ${tarKey} is ${head?.size ?? 'missing'}, expected ${sizeBytes} bytes`,
      );
    }
    const deadline = deadlineIn(request.walWaitMs);
    const pollMs = deps.pollMs ?? 1000;
    const history = await waitForBackupHistory(
      store,
      cluster,
      { from: facts.currentWal, label, segmentBytes: facts.segmentBytes, env },
      deadline,
      pollMs,
    );
    if (history.stopTimeline !== history.timeline) {
      throw new BaseBackupFailedError(
        `base backup ${id} started on timeline ${history.timeline} and stopped on ${history.stopTimeline}: the server changed timelines during the backup; take it again`,
      );
    }
    const segments = segmentsBetween(history.startLsn, history.stopLsn, history.timeline, facts.segmentBytes);
    log.info('base backup stored, waiting for its WAL in the archive', {
      baseId: id,
      sizeBytes,
      first: segments[0],
      last: segments.at(-1),
    });
    const walConfirmedAt = await waitForWal(store, cluster, segments, deadline, pollMs);

    const manifest = parseBaseManifest({
      manifestVersion: BASE_MANIFEST_VERSION,
      kind: 'base',
      id,
      cluster,
      systemIdentifier: facts.systemIdentifier,
      timeline: history.timeline,
      startLsn: formatLsn(history.startLsn),
      stopLsn: formatLsn(history.stopLsn),
      startWal: segments[0],
      stopWal: segments.at(-1),
      startTime: startedAt.toISOString(),
      stopTime: new Date(Math.max(stopTime.getTime(), startedAt.getTime())).toISOString(),
      durationMs: Date.now() - started,
      serverVersion: facts.version,
      serverMajor: facts.major,
      walSegmentBytes: facts.segmentBytes,
      key: tarKey,
      sizeBytes,
      originalBytes,
      // Of what is stored: the store's own digest where it encrypted what it read.
      sha256: sha256 ?? hash.digest('hex'),
      compression: { codec: 'zstd', level: request.compression.level },
      tablespaces: BUILT_IN_TABLESPACES,
      storageClass: head.storageClass,
      encryption: await encryptionOf(store, tarKey, head.encryption),
      walConfirmedAt: walConfirmedAt.toISOString(),
    });
    await store.putBytes(keys.manifest, `${JSON.stringify(manifest, null, 2)}\n`, {
      contentType: 'application/json',
    });
    log.info('base backup complete', { baseId: id, sizeBytes, durationMs: manifest.durationMs });
    return manifest;
  } catch (error) {
    await discard();
    if (error instanceof PipelineError) throw error;
    throw new BaseBackupFailedError(
      `completing base backup ${id} failed: ${redact((error as Error).message, secrets)}`,
      {
        cause: error,
      },
    );
  }
}
