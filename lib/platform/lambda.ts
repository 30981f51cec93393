import middy from '@middy/core';
import type * as z from 'zod';
import { InvalidEventError } from '../domain/errors.js';
import { redact } from '../domain/redact.js';
import { describeIssues } from '../domain/schema-issues.js';
import { createLogger, type Logger } from './logger.js';
import { emfSink, type MetricsSink } from './metrics.js';

/**
 * Counted per function (dimension `Function`, the Lambda function's name) for each failure the
 * function raises on purpose and its state machine already alerts. The Errors alarm subtracts
 * it: what remains (bugs, timeouts, crashes) is unexpected.
 */
export const ALERTED_ERRORS_METRIC = 'AlertedErrors';

/** What a handler body gets besides its parsed event. */
export interface Invocation {
  /** The process logger with this invocation's keys (database, backupId, request id). */
  readonly logger: Logger;
}

/** A Lambda handler as the runtime (and the local state machine runner) calls it. */
export type LambdaFunction<R> = (event: unknown, context?: unknown) => Promise<R>;

export interface LambdaSpec<S extends z.ZodType> {
  /** The function's name, for logs and error messages. */
  readonly name: string;
  /** The event's schema; a mismatch fails with InvalidEventError naming the field. */
  readonly event: S;
  readonly logger?: Logger;
  /** Persistent log keys taken from the parsed event (database, backupId, execution). */
  readonly keys?: (event: z.output<S>) => Record<string, unknown>;
  /** Typed errors this function raises as its verdict, which the state machine catches and alerts. */
  readonly alertedErrors?: readonly string[];
  /** Where the AlertedErrors count goes: EMF on stdout by default. */
  readonly metrics?: MetricsSink;
}

/** Parses `event` or throws InvalidEventError naming each bad field (never echoing values: they may hold secrets). */
export function parseEvent<S extends z.ZodType>(name: string, schema: S, event: unknown): z.output<S> {
  const result = schema.safeParse(event);
  if (result.success) return result.data;
  const problems = describeIssues(result.error, 'the event');
  throw new InvalidEventError(`${name}: malformed event: ${problems.join('; ')}`);
}

const rootLogger = createLogger();

/**
 * A thin handler: middy validates the event before the body runs and logs a failure (name and
 * redacted message) before rethrowing it, so Step Functions sees the typed error's name.
 */
export function lambdaHandler<S extends z.ZodType, R>(
  spec: LambdaSpec<S>,
  body: (event: z.output<S>, invocation: Invocation) => Promise<R>,
): LambdaFunction<R> {
  const logger = (spec.logger ?? rootLogger).child({ function: spec.name });
  const metrics = spec.metrics ?? emfSink();
  const handler = middy<unknown, R>()
    .use({
      before: (request) => {
        request.event = parseEvent(spec.name, spec.event, request.event);
      },
      onError: (request) => {
        const error = request.error as Error | null;
        const name = error?.name ?? 'Error';
        const alerted = spec.alertedErrors?.includes(name) ?? false;
        logger.error('invocation failed', {
          error: name,
          message: redact(error?.message ?? ''),
          ...(alerted ? { alerted: true } : {}),
        });
        const functionName = (request.context as { functionName?: string } | undefined)?.functionName;
        if (alerted && functionName) {
          metrics.emit(
            { Function: functionName },
            [{ name: ALERTED_ERRORS_METRIC, value: 1, unit: 'Count' }],
            new Date(),
          );
        }
      },
    })
    .handler(async (event, context) => {
      const parsed = event as z.output<S>;
      const requestId = (context as { awsRequestId?: string } | undefined)?.awsRequestId;
      const keys = { ...(spec.keys?.(parsed) ?? {}), ...(requestId ? { requestId } : {}) };
      return body(parsed, { logger: logger.child(keys) });
    });
  return (event, context) => handler(event, (context ?? {}) as never);
}

/** Builds the real handler on first call, so importing a handler module reads no config and opens nothing. */
export function lazyHandler<R>(
  build: () => LambdaFunction<R> | Promise<LambdaFunction<R>>,
): LambdaFunction<R> {
  let built: Promise<LambdaFunction<R>> | undefined;
  return async (event, context) => {
    // A build that failed (a bad config, say) is tried again on the next event, not cached.
    built ??= Promise.resolve()
      .then(build)
      .catch((error: unknown) => {
        built = undefined;
        throw error;
      });
    return (await built)(event, context);
  };
}
