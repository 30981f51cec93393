import { keysFor } from '../domain/backup-layout.js';
import {
  formatRestoreReport,
  type RestoreReport,
  type VerifyOutcome,
  verifyOutcomeSchema,
} from '../domain/verify-report.js';
import type { BackupStore } from '../storage/store.js';

/**
 * Stores a verify's report beside its backup. The one overwrite in the project: the latest
 * verification replaces the previous one.
 */
export async function storeVerifyReport(store: BackupStore, report: RestoreReport): Promise<string> {
  const key = keysFor(store.prefix, report.backupId).verify;
  await store.putBytes(key, formatRestoreReport(report), { replace: true, contentType: 'application/json' });
  return key;
}

/** Whether the last restore check of a backup passed, from its stored report; undefined when unreadable. */
export async function readVerifyOutcome(store: BackupStore, key: string): Promise<VerifyOutcome | undefined> {
  try {
    const parsed = verifyOutcomeSchema.safeParse(JSON.parse((await store.getBytes(key)).toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
