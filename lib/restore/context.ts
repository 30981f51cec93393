import { randomBytes } from 'node:crypto';
import type { Assertion, RestorePolicy } from '../config.js';
import { PipelineError, RestoreFailedError } from '../domain/errors.js';
import type { Manifest } from '../domain/manifest.js';
import type { OwnershipPlan } from '../domain/ownership.js';
import { redact } from '../domain/redact.js';
import type { CheckDepth } from '../domain/restore-checks.js';
import type { Logger } from '../platform/logger.js';
import type { Spawn } from '../platform/processes.js';
import type { ArchiveCounter } from '../postgres/archive-counts.js';
import type { Connection } from '../postgres/pg-tools.js';
import type { BackupStore } from '../storage/store.js';
import type { RestoreRequest } from './request.js';

export type RestorePhase = 'find' | 'fetch' | 'restore' | 'checks' | 'cleanup';

export interface RestoreDeps {
  readonly store: BackupStore;
  /** Where to restore: the server of this connection; its `database` is not used. */
  readonly connection: Connection;
  readonly policy: RestorePolicy;
  readonly assertions: readonly Assertion[];
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
  readonly spawn?: Spawn;
  readonly clock?: () => Date;
  /** Suffix for scratch and replacement database names. */
  readonly random?: () => string;
  /** The database used to create and drop others; `postgres` unless told. */
  readonly maintenanceDatabase?: string;
  readonly onPhase?: (phase: RestorePhase) => void;
  /** Running count of bytes read from the store. */
  readonly onProgress?: (bytes: number) => void;
  /**
   * The target server is a scratch server of this run, which nothing else uses: a verify applies
   * the backup's cluster globals there, so owners and grants are restored and checked.
   */
  readonly throwAwayServer?: boolean;
  /**
   * Called with the restored database just before the checks: what a test uses to change it and
   * show the checks notice.
   */
  readonly beforeChecks?: (database: string) => Promise<void>;
  /**
   * Aborted when the run is interrupted: reading stops, the processes are stopped, the spool
   * and the databases this run created are removed, and no report is written.
   */
  readonly signal?: AbortSignal;
}

/** What every step of one restore shares, once its backup is found. */
export interface RestoreContext {
  readonly request: RestoreRequest;
  readonly deps: RestoreDeps;
  readonly manifest: Manifest;
  readonly log: Logger;
  readonly spawn: Spawn;
  /** The database used to create and drop others. */
  readonly maintenance: string;
  readonly secrets: readonly (string | undefined)[];
  /** Warnings for the report, added by the steps as they go. */
  readonly warnings: string[];
  readonly phase: (phase: RestorePhase) => void;
  readonly onBytes: (bytes: number) => void;
  /** How far the checks look: the request's depth, else the database's configured one. */
  readonly depth: CheckDepth;
  /** Reads the decompressed archive as a streamed restore reads it, for the checks. */
  readonly counter: ArchiveCounter;
  /** Whether owners and privileges are restored, once the ownership step has decided. */
  readonly ownership?: OwnershipPlan;
}

/** A failure to read the backup from the store, with the store's message and no secret. */
export function fetchFailed(ctx: RestoreContext, error: unknown): never {
  if (error instanceof PipelineError) throw error;
  throw new RestoreFailedError(
    `reading ${ctx.manifest.key} from ${ctx.deps.store.url} failed: ${redact((error as Error).message, ctx.secrets)}`,
    { cause: error },
  );
}

/** A suffix for scratch and replacement database names. */
export function newSuffix(deps: RestoreDeps): string {
  return deps.random ? deps.random() : randomBytes(4).toString('hex');
}

export function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}
