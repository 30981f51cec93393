import { type BackupStore, needsThaw, type ThawState } from '../storage/store.js';
import { type BackupSelector, locateBackup } from './backups.js';

export interface ThawResult {
  readonly backupId: string;
  readonly key: string;
  readonly storageClass: string;
  readonly thaw: ThawState;
}

/** Asks the store to make an archived backup readable, and says where that stands. */
export async function thawBackup(
  store: BackupStore,
  database: string,
  selector: BackupSelector,
  options: { readonly tier: string; readonly days: number },
): Promise<ThawResult> {
  const { backup, object } = await locateBackup(store, database, selector);
  const key = backup.manifest.key;
  const archive = store.capabilities.archive;
  const thaw = archive && needsThaw(object.storageClass) ? await archive.thaw(key, options) : object.thaw;
  return { backupId: backup.manifest.id, key, storageClass: object.storageClass, thaw };
}
