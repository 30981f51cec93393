import {
  BASE_MANIFEST_VERSION,
  type BaseManifest,
  parseBaseManifest,
  segmentsBetween,
} from '../domain/base-backup.js';
import { BaseBackupFailedError, PipelineError } from '../domain/errors.js';
import { baseBackupKeys } from '../domain/physical-layout.js';
import { redact } from '../domain/redact.js';
import type { CopyOutcome, StoreRole } from '../domain/store-roles.js';
import { formatLsn } from '../domain/wal-names.js';
import type { Logger } from '../platform/logger.js';
import { type BackupStore, encryptionOf } from '../storage/store.js';
import {
  BUILT_IN_TABLESPACES,
  type Deadline,
  type ServerFacts,
  waitForBackupHistory,
  waitForWal,
} from './base-backup-checks.js';

/**
 * One store's copy of a base backup, after the stream is stored: the copy becomes a base backup
 * of that store (its manifest, written last) only once that store's archive holds the backup
 * history file and the WAL from start to stop. Each store is checked in its own archive, so a
 * copy is never recoverable on the strength of WAL another store holds.
 */

/** A store a base backup is written to. */
export interface BaseTarget {
  readonly role: StoreRole;
  readonly store: BackupStore;
  readonly storageClass: string;
  readonly keys: ReturnType<typeof baseBackupKeys>;
}

export function baseTarget(
  role: StoreRole,
  store: BackupStore,
  storageClass: string,
  cluster: string,
  id: string,
): BaseTarget {
  return { role, store, storageClass, keys: baseBackupKeys(store.prefix, cluster, id) };
}

/** What every copy of one base backup shares. */
export interface BaseBackupRun {
  readonly id: string;
  readonly cluster: string;
  readonly label: string;
  readonly facts: ServerFacts & { readonly currentWal: string };
  readonly startedAt: Date;
  readonly stopTime: Date;
  /** Date.now() at the start, for the duration. */
  readonly started: number;
  readonly level: number;
  readonly originalBytes: number;
  /** SHA-256 of the compressed stream as read: what a store holds unless it encrypted it. */
  readonly sha256: string;
  readonly deadline: Deadline;
  readonly pollMs: number;
  readonly env: NodeJS.ProcessEnv;
  readonly secrets: readonly (string | undefined)[];
  readonly logger: Logger;
}

/**
 * Completes one store's copy: checks its size as stored, waits for the backup history file and
 * the WAL in that store's archive, writes the manifest. A copy that does not complete is
 * deleted (the tar stream, and a manifest should its write have failed half-way), and the error
 * thrown.
 */
export async function completeBaseCopy(
  target: BaseTarget,
  stored: { readonly bytes: number; readonly sha256?: string },
  run: BaseBackupRun,
): Promise<BaseManifest> {
  const { store, keys } = target;
  const tarKey = keys.tar('base');
  try {
    const head = await store.head(tarKey);
    if (head?.size !== stored.bytes) {
      throw new BaseBackupFailedError(
        `stored ${tarKey} is ${head?.size ?? 'missing'}, expected ${stored.bytes} bytes`,
      );
    }
    const history = await waitForBackupHistory(
      store,
      run.cluster,
      { from: run.facts.currentWal, label: run.label, segmentBytes: run.facts.segmentBytes, env: run.env },
      run.deadline,
      run.pollMs,
    );
    if (history.stopTimeline !== history.timeline) {
      throw new BaseBackupFailedError(
        `base backup ${run.id} started on timeline ${history.timeline} and stopped on ${history.stopTimeline}: the server changed timelines during the backup; take it again`,
      );
    }
    const segments = segmentsBetween(
      history.startLsn,
      history.stopLsn,
      history.timeline,
      run.facts.segmentBytes,
    );
    run.logger.info('base backup stored, waiting for its WAL in the archive', {
      baseId: run.id,
      role: target.role,
      sizeBytes: stored.bytes,
      first: segments[0],
      last: segments.at(-1),
    });
    const walConfirmedAt = await waitForWal(store, run.cluster, segments, run.deadline, run.pollMs);
    const manifest = parseBaseManifest({
      manifestVersion: BASE_MANIFEST_VERSION,
      kind: 'base',
      id: run.id,
      cluster: run.cluster,
      systemIdentifier: run.facts.systemIdentifier,
      timeline: history.timeline,
      startLsn: formatLsn(history.startLsn),
      stopLsn: formatLsn(history.stopLsn),
      startWal: segments[0],
      stopWal: segments.at(-1),
      startTime: run.startedAt.toISOString(),
      stopTime: new Date(Math.max(run.stopTime.getTime(), run.startedAt.getTime())).toISOString(),
      durationMs: Date.now() - run.started,
      serverVersion: run.facts.version,
      serverMajor: run.facts.major,
      walSegmentBytes: run.facts.segmentBytes,
      key: tarKey,
      sizeBytes: stored.bytes,
      originalBytes: run.originalBytes,
      // Of what this store holds: the store's own digest where it encrypted what it read.
      sha256: stored.sha256 ?? run.sha256,
      compression: { codec: 'zstd', level: run.level },
      tablespaces: BUILT_IN_TABLESPACES,
      storageClass: head.storageClass,
      encryption: await encryptionOf(store, tarKey, head.encryption),
      walConfirmedAt: walConfirmedAt.toISOString(),
    });
    await store.putBytes(keys.manifest, `${JSON.stringify(manifest, null, 2)}\n`, {
      contentType: 'application/json',
    });
    return manifest;
  } catch (error) {
    await store.deleteMany([tarKey, keys.manifest]).catch(() => {});
    if (error instanceof PipelineError) throw error;
    throw new BaseBackupFailedError(
      `completing base backup ${run.id} in ${store.url} failed: ${redact((error as Error).message, run.secrets)}`,
      { cause: error },
    );
  }
}

/** A store's error as a copy outcome carries it. */
export function failedBaseCopy(target: BaseTarget, error: unknown): CopyOutcome {
  const e = error as Error;
  return {
    role: target.role,
    url: target.store.url,
    status: 'failed',
    error: { name: e?.name ?? 'Error', message: e?.message ?? String(error) },
  };
}
