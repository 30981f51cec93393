import { ArchivedBackupError } from '../domain/errors.js';
import { needsThaw, type ObjectDetails, type ThawState } from '../storage/store.js';

/**
 * Thaw state, in one place: whether a stored backup must be thawed before it can be read, what to
 * tell someone who tried, and how people read where a thaw stands.
 */

/** Whether an object must be thawed before it can be read: archived, and no thawed copy available now. */
export function mustThaw(object: Pick<ObjectDetails, 'storageClass' | 'thaw'>): boolean {
  return needsThaw(object.storageClass) && object.thaw.state !== 'available';
}

/** ArchivedBackupError with what to do: thaw it, or wait for the thaw under way. */
export function archivedBackupError(
  backupId: string,
  database: string,
  object: Pick<ObjectDetails, 'storageClass' | 'thaw'>,
): ArchivedBackupError {
  const where = `backup ${backupId} is in ${object.storageClass}`;
  const thaw = `pgbp thaw ${backupId} --database ${database}`;
  const state = object.thaw.state;
  return new ArchivedBackupError(
    state === 'in-progress' || state === 'requested'
      ? `${where} and its thaw is still in progress; retry once \`${thaw}\` reports it available`
      : `${where} and cannot be read until it is thawed: run \`${thaw}\` (tier and days from the config), then retry once it reports available (hours for GLACIER, up to 48 h for DEEP_ARCHIVE)`,
  );
}

/** `available until 2026-07-01T…`, as people read a thaw state. */
export function describeThaw(state: ThawState): string {
  switch (state.state) {
    case 'not-archived':
      return 'not archived: readable now';
    case 'archived':
      return 'archived: not thawed';
    case 'requested':
      return 'thaw requested';
    case 'in-progress':
      return 'thaw in progress';
    case 'available':
      return state.until ? `available until ${state.until.toISOString()}` : 'available';
  }
}
