import type { ByteSource } from './byte-source.js';

/** What one read of the source takes, and how far the fastest branch may run ahead of the slowest. */
const CHUNK_BYTES = 1024 * 1024;
const AHEAD_CHUNKS = 16;

interface Branch {
  /** The chunk (counted from the source's start) and the offset in it that this branch reads next. */
  chunk: number;
  offset: number;
  alive: boolean;
}

/**
 * One read, several writers: the source's bytes handed to `count` byte sources, each read at
 * its own pace by its own store (the pgBackRest multi-repository model: one dump, two
 * repositories). Each chunk is read from the source once and dropped once every live branch
 * has copied it; the fastest branch waits while it is 16 MiB ahead of the slowest, so memory
 * stays bounded whatever the stores' speeds.
 *
 * A branch whose store gives up (destroys it) drops out and no longer holds the others back;
 * the source is destroyed only once every branch has. A failure of the source fails every
 * branch.
 */
export function tee(source: ByteSource, count: number): ByteSource[] {
  const chunks: Buffer[] = [];
  /** The number, from the source's start, of `chunks[0]`. */
  let first = 0;
  let ended = false;
  let failure: Error | undefined;
  let reading: Promise<void> | undefined;
  let changed = signal();
  const spare: Buffer[] = [];
  const branches: Branch[] = Array.from({ length: count }, () => ({ chunk: 0, offset: 0, alive: true }));

  function signal(): { promise: Promise<void>; fire: () => void } {
    let fire = () => {};
    const promise = new Promise<void>((resolve) => {
      fire = resolve;
    });
    return { promise, fire };
  }
  const notify = () => {
    const current = changed;
    changed = signal();
    current.fire();
  };

  /** Drops the chunks every live branch has read, keeping their buffers for the next reads. */
  const trim = () => {
    const live = branches.filter((b) => b.alive);
    const low = live.length > 0 ? Math.min(...live.map((b) => b.chunk)) : first + chunks.length;
    while (first < low && chunks.length > 0) {
      const done = chunks.shift() as Buffer;
      if (spare.length < AHEAD_CHUNKS && done.buffer.byteLength === CHUNK_BYTES) {
        spare.push(Buffer.from(done.buffer, done.byteOffset, CHUNK_BYTES));
      }
      first += 1;
    }
    notify();
  };

  const readNext = (): Promise<void> => {
    reading ??= (async () => {
      const into = spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
      try {
        const filled = await source.fill(into);
        if (filled > 0) chunks.push(into.subarray(0, filled));
        if (filled < into.length) ended = true;
      } catch (error) {
        failure ??= error as Error;
      } finally {
        reading = undefined;
        notify();
      }
    })();
    return reading;
  };

  const fill = async (branch: Branch, into: Buffer): Promise<number> => {
    let filled = 0;
    while (filled < into.length) {
      if (!branch.alive) throw new Error('this copy of the stream was closed');
      if (failure) throw failure;
      const index = branch.chunk - first;
      const chunk = chunks[index];
      if (chunk) {
        const copied = chunk.copy(into, filled, branch.offset);
        filled += copied;
        branch.offset += copied;
        if (branch.offset >= chunk.length) {
          branch.chunk += 1;
          branch.offset = 0;
          trim();
        }
        continue;
      }
      if (ended) break;
      if (chunks.length >= AHEAD_CHUNKS) {
        // This branch leads; the slowest has yet to copy what is held.
        await changed.promise;
        continue;
      }
      await readNext();
    }
    return filled;
  };

  return branches.map((branch) => ({
    fill: (into) => fill(branch, into),
    destroy(error) {
      if (!branch.alive) return;
      branch.alive = false;
      trim();
      if (!branches.some((b) => b.alive)) source.destroy(error);
    },
  }));
}
