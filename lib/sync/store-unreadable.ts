import type { StoreRole } from '../domain/store-roles.js';
import type { RoleStore } from '../storage/store-roles.js';

/** A store a sync could not read, and so could not compare with the other: nothing was copied. */
export class StoreUnreadableError extends Error {
  override readonly name = 'StoreUnreadableError';
  constructor(
    readonly role: StoreRole,
    readonly url: string,
    what: string,
    cause: unknown,
  ) {
    super(`cannot read ${what} in the ${role} store (${url}): ${(cause as Error).message}`, { cause });
  }
}

/** Reads one store's side of a sync, naming the store when it fails. */
export async function readingStore<T>(at: RoleStore, what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new StoreUnreadableError(at.role, at.store.url, what, error);
  }
}
