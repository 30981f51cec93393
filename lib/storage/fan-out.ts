import type { Hash } from 'node:crypto';
import type { Socket } from 'node:net';
import { type ByteSource, childOutput } from './byte-source.js';
import { gated } from './child-output.js';
import type { BackupStore, PutOptions } from './store.js';
import { tee } from './tee.js';

/** One store a fanned-out object goes to, under its own key (each store has its own prefix). */
export interface FanOutTarget {
  readonly store: BackupStore;
  readonly key: string;
  readonly put: PutOptions;
}

/** What one target made of the object: stored whole, or failed (and left nothing). */
export type FanOutResult =
  | {
      readonly ok: true;
      readonly bytes: number;
      /** The digest of what this store holds, where it stored other bytes than it read (encryption). */
      readonly sha256?: string;
    }
  | { readonly ok: false; readonly error: unknown };

/**
 * Writes one stream to several stores at once, read once ({@link tee}): a second store is a
 * fan-out of the same read, never a second dump. A store that fails drops out and the others
 * go on; this rejects only when every store failed (with the first target's error).
 */
export async function putToAll(
  targets: readonly FanOutTarget[],
  source: ByteSource,
  onProgress?: (bytes: number) => void,
): Promise<FanOutResult[]> {
  let total = 0;
  const counted: ByteSource = onProgress
    ? {
        async fill(into) {
          const filled = await source.fill(into);
          total += filled;
          onProgress(total);
          return filled;
        },
        destroy: (error) => source.destroy(error),
      }
    : source;
  const branches = tee(counted, targets.length);
  const results = await Promise.all(
    targets.map((target, i) => {
      const branch = branches[i] as ByteSource;
      return target.store.putStream(target.key, branch, target.put).then(
        ({ bytes, sha256 }): FanOutResult => ({ ok: true, bytes, ...(sha256 ? { sha256 } : {}) }),
        (error: unknown): FanOutResult => {
          branch.destroy();
          return { ok: false, error };
        },
      );
    }),
  );
  if (results.every((r) => !r.ok)) throw (results[0] as { error: unknown }).error;
  return results;
}

/** Where a child writes an object that goes to several stores, and how each copy completes. */
export interface FanOutOutput {
  /** The child's stdout: its end of a socket this process reads. */
  readonly childEnd: Socket;
  /** Closes this process's copy of the child's end, once the child has it. */
  release(): void;
  /**
   * Stores what the child writes in every target, hashing every byte once, holding each end
   * back until `finished` (every process exited cleanly, every check passed): each copy exists
   * whole or not at all. Rejects only when no store holds a copy.
   */
  store(
    finished: Promise<void>,
    hash: Hash,
    options?: { readonly onProgress?: (bytes: number) => void },
  ): Promise<FanOutResult[]>;
  /** Stops reading; after a failure. */
  abort(): Promise<void>;
}

/** Opens a socket for a child whose output {@link putToAll} writes to every target. */
export async function openFanOutOutput(
  targets: readonly FanOutTarget[],
  socketFailed: (cause: unknown) => Error,
): Promise<FanOutOutput> {
  const output = await childOutput().catch((cause: unknown) => {
    throw socketFailed(cause);
  });
  return {
    childEnd: output.childEnd,
    release: () => output.childEnd.destroy(),
    store: (finished, hash, options = {}) =>
      putToAll(targets, gated(output.source, finished, hash), options.onProgress),
    async abort() {
      output.source.destroy();
    },
  };
}
