/** Runs `work` up to `attempts` times, waiting `delaysMs[i]` before retry i; rethrows the last failure. */
export async function withRetries<T>(
  work: () => Promise<T>,
  options: {
    readonly attempts?: number;
    readonly delaysMs?: readonly number[];
    readonly retryable?: (e: unknown) => boolean;
  } = {},
): Promise<T> {
  const attempts = options.attempts ?? 3;
  const delays = options.delaysMs ?? [200, 1000];
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await work();
    } catch (error) {
      last = error;
      if (options.retryable && !options.retryable(error)) throw error;
      if (i < attempts - 1)
        await new Promise((r) => setTimeout(r, delays[Math.min(i, delays.length - 1)] ?? 0));
    }
  }
  throw last;
}
