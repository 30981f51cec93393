import { PipelineError, RestoreCheckFailedError, RestoreFailedError } from '../domain/errors.js';
import { redact } from '../domain/redact.js';
import { leftoverScratch, scratchDatabaseName, scratchSuffix } from '../domain/restore-checks.js';
import type { Logger } from '../platform/logger.js';
import {
  createEmptyDatabase,
  createSchemas,
  databaseExists,
  databasesStartingWith,
  dropDatabase,
  swapDatabase,
} from '../postgres/pg-restore.js';
import { newSuffix, type RestoreContext, type RestoreDeps } from './context.js';
import { existingTargetError } from './target-guard.js';

/** Where a restore goes. */
export interface RestorePlace {
  /** The database the request names, or the verify's scratch database. */
  readonly target: string;
  /**
   * The database pg_restore writes: the target, or, replacing an existing one, a new database
   * beside it; the old one stays untouched until the new one passed its checks.
   */
  readonly restoreInto: string;
}

/**
 * The target step: a verify first drops the scratch databases killed verifies left, then names a
 * new scratch database; a restore takes the requested one, refused when it exists unless asked
 * to replace it.
 */
export async function chooseTarget(ctx: RestoreContext): Promise<RestorePlace> {
  const { request, deps, maintenance, log } = ctx;
  // A verify that was killed (a stopped container) never dropped its scratch database; the next
  // one does, once it is old enough that no restore can still be using it. The wall clock, not
  // deps.clock: every verify on this server reads the others' names by its own wall clock.
  const now = new Date();
  if (request.mode === 'verify') {
    const swept = await dropLeftoverScratch(deps, maintenance, request.database, now, log);
    ctx.warnings.push(
      ...swept.map((name) => `dropped ${name}, a scratch database a killed verify left behind`),
    );
  }
  const target =
    request.mode === 'verify'
      ? scratchDatabaseName(request.database, scratchSuffix(now, newSuffix(deps)))
      : (request.targetDatabase as string);
  const exists = await databaseExists(deps.connection, maintenance, target);
  if (exists && !(request.mode === 'restore' && request.replace)) throw existingTargetError(target);
  const restoreInto = exists ? `pgbp_replace_${newSuffix(deps)}${newSuffix(deps)}` : target;
  return { target, restoreInto };
}

/** The database a restore created, while `work` runs in it. */
export interface RestoreDatabase {
  /**
   * Puts the restored and checked database in place of the target it replaces. From then on it
   * is never dropped: should the swap fail, the restored data stays where it is.
   */
  putInPlace(): Promise<void>;
}

/**
 * Creates the (empty) database of `place.restoreInto` with the requested schemas, runs `work`,
 * and drops what it created as the mode asks: a verify's scratch database always; a restore's
 * when anything failed, except a target whose checks failed (it holds what the backup holds)
 * and a database whose swap into place began. A half-restored or unverified database must not
 * pass for a restore.
 */
export async function inNewDatabase<T>(
  ctx: RestoreContext,
  place: RestorePlace,
  work: (db: RestoreDatabase) => Promise<T>,
): Promise<T> {
  const { deps, request, maintenance, manifest, log, secrets } = ctx;
  const { restoreInto, target } = place;
  try {
    await createEmptyDatabase(deps.connection, maintenance, restoreInto);
  } catch (cause) {
    if (cause instanceof PipelineError) throw cause;
    throw new RestoreFailedError(
      `cannot create the database ${restoreInto}: ${redact((cause as Error).message, secrets)}`,
      { cause },
    );
  }
  let handedOver = false;
  const db: RestoreDatabase = {
    async putInPlace() {
      handedOver = true;
      try {
        await swapDatabase(deps.connection, maintenance, restoreInto, target);
      } catch (cause) {
        throw new RestoreFailedError(
          `backup ${manifest.id} restored and checked in ${restoreInto}, but putting it in place of ${target} failed (${redact((cause as Error).message, secrets)}); the restored data is kept in ${restoreInto}`,
          { cause },
        );
      }
    },
  };
  try {
    await createSchemas({ ...deps.connection, database: restoreInto }, request.schemas);
    return await work(db);
  } catch (error) {
    const keep = error instanceof RestoreCheckFailedError && restoreInto === target;
    if (request.mode === 'restore' && !handedOver && !keep) {
      ctx.phase('cleanup');
      await dropDatabase(deps.connection, maintenance, restoreInto).catch((e: Error) =>
        log.error('could not drop the database this restore created', {
          database: restoreInto,
          error: e.message,
        }),
      );
    }
    throw error;
  } finally {
    if (request.mode === 'verify') {
      ctx.phase('cleanup');
      await dropDatabase(deps.connection, maintenance, restoreInto).catch((e: Error) =>
        log.error('could not drop the scratch database', { database: restoreInto, error: e.message }),
      );
    }
  }
}

/**
 * Drops the scratch databases that verifies of this database left when they were killed; returns
 * their names. Only this database's: a verify answers for its own leftovers.
 */
export async function dropLeftoverScratch(
  deps: RestoreDeps,
  maintenance: string,
  database: string,
  now: Date,
  log: Logger,
): Promise<string[]> {
  const sample = scratchDatabaseName(database, scratchSuffix(now, '00000000'));
  const prefix = sample.slice(0, sample.lastIndexOf('_') + 1);
  const ours = (await databasesStartingWith(deps.connection, maintenance, prefix)).filter(
    (name) => name.length === sample.length,
  );
  const leftovers = leftoverScratch(ours, now);
  for (const name of leftovers) {
    await dropDatabase(deps.connection, maintenance, name);
    log.warn('dropped a leftover scratch database', { scratch: name });
  }
  return leftovers;
}
