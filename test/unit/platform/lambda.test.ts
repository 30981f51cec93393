import { describe, expect, it } from 'vitest';
import { lazyHandler } from '../../../lib/platform/lambda.js';

describe('lazyHandler', () => {
  it('builds the handler on the first event, once, and again after a build that failed', async () => {
    let builds = 0;
    const handler = lazyHandler(async () => {
      builds += 1;
      // A cold start that cannot read its config yet (a throttled secret, say).
      if (builds === 1) throw new Error('config not readable yet');
      return async (event) => ({ echoed: event });
    });
    expect(builds).toBe(0);
    await expect(handler({ n: 1 })).rejects.toThrow('config not readable yet');
    await expect(handler({ n: 2 })).resolves.toEqual({ echoed: { n: 2 } });
    await expect(handler({ n: 3 })).resolves.toEqual({ echoed: { n: 3 } });
    expect(builds).toBe(2);
  });
});
