import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { ALERTED_ERRORS_METRIC, lambdaHandler, lazyHandler } from '../../../lib/platform/lambda.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { emfSink, METRIC_NAMESPACE } from '../../../lib/platform/metrics.js';

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

describe('lambdaHandler', () => {
  const verdict = (name: string) => {
    const error = new Error('a verdict');
    error.name = name;
    return error;
  };

  function handlerThrowing(error: Error) {
    const lines: Record<string, unknown>[] = [];
    const handler = lambdaHandler(
      {
        name: 'check-size',
        event: z.object({}),
        logger: silentLogger,
        alertedErrors: ['SizeOutOfRangeError'],
        metrics: emfSink((line) => lines.push(JSON.parse(line))),
      },
      async () => {
        throw error;
      },
    );
    return { handler, lines };
  }

  const context = { functionName: 'pg-backup-pipeline-prod-checkSize', awsRequestId: 'r-1' };

  it('counts a typed verdict its state machine alerts as AlertedErrors of the function, and still fails', async () => {
    const { handler, lines } = handlerThrowing(verdict('SizeOutOfRangeError'));
    await expect(handler({}, context)).rejects.toMatchObject({ name: 'SizeOutOfRangeError' });
    expect(lines).toEqual([
      expect.objectContaining({
        Function: 'pg-backup-pipeline-prod-checkSize',
        [ALERTED_ERRORS_METRIC]: 1,
        _aws: expect.objectContaining({
          CloudWatchMetrics: [
            {
              Namespace: METRIC_NAMESPACE,
              Dimensions: [['Function']],
              Metrics: [{ Name: ALERTED_ERRORS_METRIC, Unit: 'Count' }],
            },
          ],
        }),
      }),
    ]);
  });

  it.each([
    ['a runtime fault', new TypeError('cannot read properties of undefined')],
    ['another typed error', verdict('ConfigError')],
  ])('counts nothing for %s, which the Errors alarm then reports', async (_what, error) => {
    const { handler, lines } = handlerThrowing(error);
    await expect(handler({}, context)).rejects.toBe(error);
    expect(lines).toEqual([]);
  });
});
