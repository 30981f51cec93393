import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import {
  BASE_MANIFEST_VERSION,
  type BaseManifest,
  baseBackupIdFor,
  parseBackupLabel,
  parseBaseManifest,
  segmentsBetween,
  walRangesOf,
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
  startChild,
} from '../platform/processes.js';
import { type Connection, describeConnection, libpqEnv } from '../postgres/pg-tools.js';
import { openChildOutput } from '../storage/child-output.js';
import { zstdBuffer } from '../storage/small-objects.js';
import { type BackupStore, encryptionOf } from '../storage/store.js';
import { startZstd } from '../storage/zstd.js';
import { BUILT_IN_TABLESPACES, serverFacts, systemIdentifierOf, waitForWal } from './base-backup-checks.js';
import { TarScanner } from './tar-scan.js';

/**
 * A physical base backup: pg_basebackup writes the data directory as one tar stream (`-Ft -D -`,
 * no WAL: the archive has it), which passes through this process only to be followed (its
 * backup_label, pg_control and backup_manifest are read on the way) into zstd, whose output goes
 * straight into the store with its SHA-256. Nothing of the cluster is copied to local disk. The
 * base backup exists once its manifest is written, which happens only after the WAL from its
 * start to its stop position is found in the archive.
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
  /** Running count of the tar stream's bytes, for progress and heartbeats. */
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

const KEPT = new Set(['backup_label', 'backup_manifest', 'global/pg_control']);

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
  const zstd = startZstd(request.compression, {
    env,
    stdin: 'pipe',
    stdout: output.childEnd,
    ...(deps.spawn ? { spawn: deps.spawn } : {}),
  });
  output.release();
  let archiveWait: NodeJS.Timeout | undefined;
  let archiveStuck = false;
  const children: Child[] = [];
  const basebackup = startChild(
    'pg_basebackup',
    [
      '--pgdata=-',
      '--format=tar',
      '--wal-method=none',
      `--checkpoint=${request.checkpoint}`,
      `--label=pgbp base backup ${id}`,
      '--no-password',
    ],
    {
      env,
      stdout: 'pipe',
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
  children.push(basebackup, zstd);
  const scanner = new TarScanner(KEPT);
  let originalBytes = 0;
  const pumped = pump(basebackup, zstd, (chunk) => {
    scanner.push(chunk);
    originalBytes += chunk.length;
    deps.onProgress?.(originalBytes);
  });

  const finished = (async () => {
    const results = await Promise.all([basebackup.exited, zstd.exited, pumped]);
    if (archiveWait) clearTimeout(archiveWait);
    if (archiveStuck) {
      throw new BaseBackupFailedError(
        `the server waited ${Math.round(request.walWaitMs / 1000)} s for the backup's WAL to be archived, in vain: archive_command is failing or behind on ${describeConnection(connection)} (see the server's log); nothing was kept`,
      );
    }
    const exits = [results[0], results[1]];
    const cause = ownFailure(exits) ?? exits.find((e) => !exitedCleanly(e));
    if (cause) throw new BaseBackupFailedError(describeExit(cause));
    if (!scanner.complete)
      throw new BaseBackupFailedError('pg_basebackup ended its output before the end of the tar stream');
    for (const name of KEPT) {
      if (!scanner.kept.has(name))
        throw new BaseBackupFailedError(`the tar stream of pg_basebackup holds no ${name}`);
    }
  })();
  finished.catch(() => {});

  const hash = createHash('sha256');
  let sizeBytes: number;
  let sha256: string | undefined;
  try {
    ({ bytes: sizeBytes, sha256 } = await output.store(finished, hash));
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

  const stored: string[] = [tarKey];
  const discard = async () => {
    await store.deleteMany(stored).catch(() => {});
  };
  try {
    const label = parseBackupLabel(scanner.kept.get('backup_label')?.toString('utf8') ?? '');
    const backupManifestText = scanner.kept.get('backup_manifest') ?? Buffer.alloc(0);
    const ranges = walRangesOf(backupManifestText.toString('utf8'));
    if (!label || !ranges) {
      throw new BaseBackupFailedError(
        'the backup_label or backup_manifest of the base backup cannot be read',
      );
    }
    let stopLsn = 0n;
    for (const r of ranges) if (r.endLsn > stopLsn) stopLsn = r.endLsn;
    const stopTime = clock();
    const head = await store.head(tarKey);
    if (head?.size !== sizeBytes) {
      throw new BaseBackupFailedError(
        `stored ${tarKey} is ${head?.size ?? 'missing'}, expected ${sizeBytes} bytes`,
      );
    }

    const compressedManifest = await zstdBuffer(backupManifestText, 'compress', env, deps.spawn);
    await store.putBytes(keys.backupManifest, compressedManifest, { storageClass: request.storageClass });
    stored.push(keys.backupManifest);

    const segments = segmentsBetween(label.startLsn, stopLsn, label.timeline, facts.segmentBytes);
    log.info('base backup stored, waiting for its WAL in the archive', {
      baseId: id,
      sizeBytes,
      first: segments[0],
      last: segments.at(-1),
    });
    const walConfirmedAt = await waitForWal(store, cluster, segments, request.walWaitMs, deps.pollMs ?? 1000);

    const manifest = parseBaseManifest({
      manifestVersion: BASE_MANIFEST_VERSION,
      kind: 'base',
      id,
      cluster,
      systemIdentifier: systemIdentifierOf(scanner.kept.get('global/pg_control') as Buffer),
      timeline: label.timeline,
      startLsn: formatLsn(label.startLsn),
      stopLsn: formatLsn(stopLsn),
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
      backupManifest: {
        key: keys.backupManifest,
        sha256: createHash('sha256').update(compressedManifest).digest('hex'),
        sizeBytes: compressedManifest.length,
      },
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

/**
 * Copies the producer's stdout into the consumer's stdin, handing each chunk to `observe` on the
 * way, with back-pressure; ends the consumer's input at the producer's end. Never rejects: a
 * broken pipe shows in the children's exits.
 */
function pump(from: Child, to: Child, observe: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve) => {
    const source = from.stdout;
    const sink = to.stdin;
    if (!source || !sink) {
      resolve();
      return;
    }
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve();
    };
    source.on('data', (chunk: Buffer) => {
      try {
        observe(chunk);
      } catch (error) {
        from.stop();
        to.stop();
        source.destroy(error as Error);
        finish();
        return;
      }
      if (!sink.write(chunk)) {
        source.pause();
        sink.once('drain', () => source.resume());
      }
    });
    source.once('end', () => {
      sink.end();
      finish();
    });
    source.once('error', () => {
      sink.destroy();
      finish();
    });
    sink.once('error', () => {
      source.destroy();
      finish();
    });
  });
}
