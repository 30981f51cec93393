import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import {
  type BaseManifest,
  baseBackupIdFor,
  baseBackupLabel,
  zstdSummarySizes,
} from '../domain/base-backup.js';
import { BaseBackupFailedError, ConfigError, PipelineError } from '../domain/errors.js';
import { isClusterName } from '../domain/physical-layout.js';
import { redact } from '../domain/redact.js';
import { type CopyOutcome, describeFailedCopies } from '../domain/store-roles.js';
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
import { type FanOutResult, openFanOutOutput } from '../storage/fan-out.js';
import type { BackupStore } from '../storage/store.js';
import { startZstd } from '../storage/zstd.js';
import { deadlineIn, serverFacts } from './base-backup-checks.js';
import {
  type BaseBackupRun,
  type BaseTarget,
  baseTarget,
  completeBaseCopy,
  failedBaseCopy,
} from './base-backup-copy.js';

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
  /**
   * The secondary store (config `stores.secondary`): the same compressed stream, fanned out,
   * becomes a base backup there too once that store's archive holds its WAL.
   */
  readonly secondary?: { readonly store: BackupStore; readonly storageClass: string };
}

/** A base backup's manifest (the primary's, or the secondary's when only that one holds it) and each store's outcome. */
export interface BaseBackupResult {
  readonly manifest: BaseManifest;
  readonly copies: readonly CopyOutcome[];
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
  return (await runBaseBackupToStores(request, deps)).manifest;
}

/**
 * {@link runBaseBackup} to the primary and, when the request names one, the secondary store,
 * from one pg_basebackup: zstd's output is read once and fanned out. Each store's copy gets its
 * manifest only once it is whole and that store's archive holds its WAL; a store that fails (or
 * whose archive lacks the WAL) loses only its copy, and the outcome says which and why (a
 * degraded run). Fails only when no store holds the base backup.
 */
export async function runBaseBackupToStores(
  request: BaseBackupRequest,
  deps: BaseBackupDeps,
): Promise<BaseBackupResult> {
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
  const currentWal = facts.currentWal;
  if (facts.inRecovery || !currentWal) {
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
  const targets: BaseTarget[] = [
    baseTarget('primary', store, request.storageClass, cluster, id),
    ...(request.secondary
      ? [baseTarget('secondary', request.secondary.store, request.secondary.storageClass, cluster, id)]
      : []),
  ];
  const tarKey = targets[0]?.keys.tar('base') as string;
  const started = Date.now();
  log.info('base backup starting', { baseId: id, server: facts.version, stores: targets.length });

  // The keys first: one that cannot be used fails the base backup before any object exists.
  await Promise.all(targets.map((t) => t.store.capabilities.envelope?.ready()));
  const socketFailed = (cause: unknown) => new BaseBackupFailedError((cause as Error).message, { cause });
  // One store: zstd writes into a file store's temporary file itself. Two: its output is read
  // here once and fanned out to both.
  const output =
    targets.length === 1
      ? await openChildOutput(
          store,
          tarKey,
          'sequential',
          { storageClass: request.storageClass },
          socketFailed,
        )
      : await openFanOutOutput(
          targets.map((t) => ({
            store: t.store,
            key: t.keys.tar('base'),
            put: { storageClass: t.storageClass },
          })),
          socketFailed,
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
  let results: FanOutResult[];
  try {
    const progress = deps.onProgress ? { onProgress: deps.onProgress } : {};
    results =
      'intoFile' in output
        ? [{ ok: true, ...(await output.store(finished, hash, progress)) }]
        : await output.store(finished, hash, progress);
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
  const run: BaseBackupRun = {
    id,
    cluster,
    label,
    facts: { ...facts, currentWal },
    startedAt,
    stopTime: clock(),
    started,
    level: request.compression.level,
    originalBytes: zstdSummary?.read ?? 0,
    sha256: hash.digest('hex'),
    deadline: deadlineIn(request.walWaitMs),
    pollMs: deps.pollMs ?? 1000,
    env,
    secrets,
    logger: log,
  };
  const outcomes = await Promise.all(
    targets.map(async (target, i) => {
      const result = results[i] as FanOutResult;
      if (!result.ok) return { target, error: result.error };
      try {
        return { target, manifest: await completeBaseCopy(target, result, run) };
      } catch (error) {
        return { target, error };
      }
    }),
  );
  const copies: CopyOutcome[] = [];
  const manifests: BaseManifest[] = [];
  for (const outcome of outcomes) {
    if (outcome.manifest) {
      manifests.push(outcome.manifest);
      copies.push({
        role: outcome.target.role,
        url: outcome.target.store.url,
        status: 'stored',
        key: outcome.target.keys.manifest,
      });
      continue;
    }
    // One store: its failure is the base backup's, as it was said.
    if (targets.length === 1) throw outcome.error;
    log.warn('base backup not stored in one store', {
      role: outcome.target.role,
      store: outcome.target.store.url,
    });
    copies.push(failedBaseCopy(outcome.target, outcome.error));
  }
  const manifest = manifests[0];
  if (!manifest) {
    throw new BaseBackupFailedError(
      `no store holds base backup ${id}: ${describeFailedCopies(copies).join('; ')}`,
    );
  }
  log.info('base backup complete', {
    baseId: id,
    sizeBytes: manifest.sizeBytes,
    durationMs: manifest.durationMs,
    ...(targets.length > 1 ? { stores: copies.map((c) => `${c.role}: ${c.status}`) } : {}),
  });
  return { manifest, copies };
}
