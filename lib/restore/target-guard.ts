import { InvalidRestoreRequestError, RestoreFailedError } from '../domain/errors.js';
import { redact } from '../domain/redact.js';
import { databaseExists } from '../postgres/pg-restore.js';
import { type Connection, describeConnection } from '../postgres/pg-tools.js';
import type { RestoreRequest } from './request.js';

/** A restore into a database that exists, not asked to replace it. */
export function existingTargetError(target: string): InvalidRestoreRequestError {
  return new InvalidRestoreRequestError(
    `targetDatabase: ${target} already exists; choose a new name, or ask to replace it (--replace)`,
  );
}

/**
 * Refuses a restore whose target database exists on the server, unless the request asks to
 * replace it. The restore state machine's Prepare runs this before any thaw (which can take
 * hours), so the answer does not wait for the archive; the restore itself asks again.
 */
export async function refuseExistingTarget(
  request: RestoreRequest,
  connection: Connection,
  maintenance = 'postgres',
): Promise<void> {
  const target = request.targetDatabase;
  if (request.mode !== 'restore' || request.replace || target === undefined) return;
  let exists: boolean;
  try {
    exists = await databaseExists(connection, maintenance, target);
  } catch (cause) {
    throw new RestoreFailedError(
      `cannot ask ${describeConnection({ ...connection, database: maintenance })} whether ${target} exists: ${redact((cause as Error).message, [connection.password])}`,
      { cause },
    );
  }
  if (exists) throw existingTargetError(target);
}
