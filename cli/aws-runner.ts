import { setTimeout as delay } from 'node:timers/promises';
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListStateMachinesCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { Config } from '../lib/config.js';
import { ConfigError } from '../lib/domain/errors.js';
import { sfnClientIn } from '../lib/platform/aws-clients/sfn.js';
import { deployedMachineName, type Json, type MachineName } from '../lib/state-machines.js';
import { databaseOf, type ExecutionError, type ExecutionResult, type StepEvent } from './executions.js';

/**
 * AWS mode: start an execution of the deployed state machine and follow it to its end through
 * its history, printing each state as it runs. Stopping the CLI stops only the following; the
 * execution goes on, and the console (or this command's output) names it.
 */

export type SfnPort = Pick<SFNClient, 'send'>;

export interface AwsRunOptions {
  readonly machine: MachineName;
  readonly input: Json;
  readonly config: Config;
  /** The machine's ARN; found by its deployed name (`pg-backup-pipeline-<stage>-<machine>`) when absent. */
  readonly stateMachineArn?: string;
  readonly client?: SfnPort;
  /** The execution's name; Step Functions makes one up when absent. */
  readonly name?: string;
  readonly onStep?: (event: StepEvent) => void;
  /** Between history reads (default 5 s). */
  readonly pollMs?: number;
  /** Give up following after this long (default 48 h: a thaw and a restore fit). */
  readonly maxWaitMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

/** The ARN of a stage's deployed machine, found by the name serverless.yml gives it. */
export async function findStateMachineArn(
  client: SfnPort,
  stage: string,
  machine: MachineName,
): Promise<string> {
  const wanted = deployedMachineName(stage, machine);
  let nextToken: string | undefined;
  do {
    const page = await client.send(new ListStateMachinesCommand({ nextToken, maxResults: 1000 }));
    const found = page.stateMachines?.find((m) => m.name === wanted);
    if (found?.stateMachineArn) return found.stateMachineArn;
    nextToken = page.nextToken;
  } while (nextToken);
  throw new ConfigError(
    `no state machine named ${wanted} in this account and region: deploy the stage (npx serverless deploy --stage ${stage}) or pass --state-machine-arn`,
  );
}

const TERMINAL = new Set(['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionTimedOut', 'ExecutionAborted']);

function parseJson(text: string | undefined): Json | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as Json;
  } catch {
    return undefined;
  }
}

/** The `…EventDetails` of an event, whichever kind it is. */
function detailsOf(event: HistoryEvent): Record<string, unknown> | undefined {
  for (const [key, value] of Object.entries(event)) {
    if (key.endsWith('EventDetails') && value && typeof value === 'object')
      return value as Record<string, unknown>;
  }
  return undefined;
}

interface Context {
  /** The state the event belongs to. */
  readonly name?: string;
  readonly type?: string;
  readonly nested: boolean;
  readonly database?: string;
  readonly enteredAt?: number;
  /** The first event of a Map iteration: the state after it is nested. */
  readonly iteration?: boolean;
  /** A failure event: the state's exit that follows is a caught error, not a success. */
  readonly failed?: boolean;
}

const FAILURE = /(Failed|TimedOut)$/;

/**
 * Turns history events (in order) into step events. Which state an event belongs to is found
 * through `previousEventId`, as the console does, so concurrent Map iterations stay apart.
 */
export function historyReader(onStep: (event: StepEvent) => void) {
  const contexts = new Map<number, Context>();
  const byName = new Map<string, Context>();
  const stateOutputs: Record<string, Json> = {};
  const step = (kind: StepEvent['kind'], c: Context, more: Partial<StepEvent> = {}) =>
    onStep({
      kind,
      state: c.name ?? '?',
      type: c.type ?? 'Task',
      nested: c.nested,
      ...(c.database ? { database: c.database } : {}),
      ...more,
    });
  return {
    stateOutputs,
    read(event: HistoryEvent): void {
      const id = event.id ?? 0;
      const type = event.type ?? '';
      const prev = contexts.get(event.previousEventId ?? -1);
      const at = event.timestamp ? new Date(event.timestamp).getTime() : undefined;
      if (type.endsWith('StateEntered')) {
        const details = event.stateEnteredEventDetails;
        const database = databaseOf(parseJson(details?.input));
        const context: Context = {
          name: details?.name ?? '?',
          type: type.slice(0, -'StateEntered'.length),
          nested: Boolean(prev?.nested || prev?.iteration),
          ...(database ? { database } : {}),
          ...(at !== undefined ? { enteredAt: at } : {}),
        };
        contexts.set(id, context);
        byName.set(context.name as string, context);
        step('entered', context);
        return;
      }
      if (type.endsWith('StateExited')) {
        const details = event.stateExitedEventDetails;
        const name = details?.name ?? '?';
        const context = (prev?.name === name ? prev : byName.get(name)) ?? { name, nested: false };
        contexts.set(id, { ...context, failed: false });
        if (prev?.failed) return;
        if (!context.nested) {
          const output = parseJson(details?.output);
          if (output !== undefined) stateOutputs[name] = output;
        }
        step('succeeded', context, {
          ...(at !== undefined && context.enteredAt !== undefined
            ? { seconds: (at - context.enteredAt) / 1000 }
            : {}),
        });
        return;
      }
      if (type === 'MapIterationStarted') {
        contexts.set(id, { nested: true, iteration: true });
        return;
      }
      const failed = FAILURE.test(type) && !type.startsWith('Execution') && !type.startsWith('MapIteration');
      contexts.set(id, { ...(prev ?? { nested: false }), iteration: false, failed });
      if (failed && prev?.name) {
        const details = detailsOf(event);
        step('failed', prev, {
          error: {
            name: String(
              details?.error ?? (type.endsWith('TimedOut') ? 'States.Timeout' : 'States.TaskFailed'),
            ),
            cause: String(details?.cause ?? ''),
          },
        });
      }
    },
  };
}

/** Starts an execution of the deployed machine and follows it; the result says how it ended. */
export async function runAwsExecution(options: AwsRunOptions): Promise<ExecutionResult> {
  const client = options.client ?? sfnClientIn(options.config.region);
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => delay(ms).then(() => undefined));
  const pollMs = options.pollMs ?? 5000;
  const maxWaitMs = options.maxWaitMs ?? 48 * 3600 * 1000;
  const stateMachineArn =
    options.stateMachineArn ?? (await findStateMachineArn(client, options.config.stage, options.machine));
  const started = now();
  const start = await client.send(
    new StartExecutionCommand({
      stateMachineArn,
      input: JSON.stringify(options.input),
      ...(options.name ? { name: options.name } : {}),
    }),
  );
  const executionArn = start.executionArn;
  if (!executionArn) throw new Error(`StartExecution of ${stateMachineArn} returned no execution ARN`);

  const reader = historyReader(options.onStep ?? (() => {}));
  let lastSeen = 0;
  let ended = false;
  while (!ended) {
    // Newest first, back to the last event already read; then handled oldest first.
    const fresh: HistoryEvent[] = [];
    let nextToken: string | undefined;
    do {
      const page = await client.send(
        new GetExecutionHistoryCommand({
          executionArn,
          reverseOrder: true,
          includeExecutionData: true,
          maxResults: 500,
          nextToken,
        }),
      );
      const events = page.events ?? [];
      fresh.push(...events.filter((e) => (e.id ?? 0) > lastSeen));
      nextToken = events.some((e) => (e.id ?? 0) <= lastSeen) ? undefined : page.nextToken;
    } while (nextToken);
    fresh.sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    for (const event of fresh) {
      reader.read(event);
      lastSeen = Math.max(lastSeen, event.id ?? 0);
      if (TERMINAL.has(event.type ?? '')) ended = true;
    }
    if (ended) break;
    if (now() - started > maxWaitMs) {
      throw new Error(
        `${executionArn} is still running after ${Math.round(maxWaitMs / 60_000)} min; it goes on: follow it in the Step Functions console`,
      );
    }
    await sleep(pollMs);
  }

  const described: DescribeExecutionCommandOutput = await client.send(
    new DescribeExecutionCommand({ executionArn }),
  );
  const status = described.status ?? 'FAILED';
  const output = parseJson(described.output);
  const error: ExecutionError | undefined =
    status === 'SUCCEEDED'
      ? undefined
      : {
          name: described.error ?? (status === 'TIMED_OUT' ? 'States.Timeout' : status),
          cause: described.cause ?? '',
        };
  return {
    machine: options.machine,
    executionId: executionArn,
    status: status === 'SUCCEEDED' ? 'SUCCEEDED' : 'FAILED',
    ...(output !== undefined ? { output } : {}),
    ...(error ? { error } : {}),
    stateOutputs: reader.stateOutputs,
    seconds: (now() - started) / 1000,
  };
}
