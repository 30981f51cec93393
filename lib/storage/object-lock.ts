import type { BackupStore } from './store.js';

/**
 * Whether any object in the store can be under Object Lock (retention dates and legal holds
 * both need a bucket with it enabled). Retention asks once per run so it can skip a HEAD per
 * object on stores that cannot hold a locked object; a store without the capability cannot.
 */
export async function objectLockPossible(store: BackupStore): Promise<boolean> {
  const lock = store.capabilities.objectLock;
  return lock ? lock.possible() : false;
}
