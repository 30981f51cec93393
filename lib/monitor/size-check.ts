import { scanDatabase } from '../catalog/backups.js';
import { type Config, databaseSettings } from '../config.js';
import { keysFor } from '../domain/backup-layout.js';
import { BackupNotFoundError, CorruptBackupError } from '../domain/errors.js';
import { judgeSize, type SizeVerdict } from '../domain/size-check.js';
import type { BackupStore } from '../storage/store.js';

export interface SizeCheckResult {
  readonly database: string;
  readonly backupId: string;
  readonly verdict: SizeVerdict;
}

/**
 * Judges one stored backup's size against its database's range and the good backups taken
 * before it (the baseline). A backup that is not complete in the store is not judged:
 * BackupNotFoundError, or CorruptBackupError when its manifest and dump disagree.
 */
export async function checkBackupSize(options: {
  readonly store: BackupStore;
  readonly config: Config;
  readonly database: string;
  readonly backupId: string;
}): Promise<SizeCheckResult> {
  const { store, config, database, backupId } = options;
  const scan = await scanDatabase(store, database);
  const index = scan.backups.findIndex((b) => b.manifest.id === backupId);
  const target = scan.backups[index];
  if (!target) {
    const manifestKey = keysFor(store.prefix, backupId).manifest;
    const broken = scan.broken.find((b) => b.key === manifestKey);
    if (broken) throw new CorruptBackupError(`backup ${backupId} cannot be judged: ${broken.reason}`);
    throw new BackupNotFoundError(`no complete backup ${backupId} of ${database} in ${store.url}`);
  }
  const createdAt = target.manifest.createdAt;
  const history = scan.backups
    .slice(index + 1)
    .filter((b) => b.manifest.createdAt < createdAt)
    .map((b) => b.manifest.sizeBytes);
  const verdict = judgeSize(target.manifest.sizeBytes, history, databaseSettings(config, database).size);
  return { database, backupId, verdict };
}
