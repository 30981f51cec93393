import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { ConfigError } from '../lib/domain/errors.js';
import { redact } from '../lib/domain/redact.js';
import { parseDuration } from '../lib/domain/units.js';
import { exitCodeFor, listenForInterrupts } from '../lib/platform/interrupts.js';

/** What a Fargate entrypoint touches, passed in so tests need no module mocks. */
export interface TaskDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Step Functions client, for the task token; built only when a token is present. */
  readonly sfn?: () => Pick<SFNClient, 'send'>;
  /**
   * Ends the task when Step Functions no longer waits for it (the state timed out, the execution
   * was aborted): by default the SIGTERM that ECS StopTask would send.
   */
  readonly stop?: () => void;
}

/** Heartbeat answers meaning nothing waits for this task any more: it must not run on unobserved. */
const TOKEN_GONE = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

export interface TaskContext {
  /** Secrets known to the task, removed from anything it reports. */
  readonly secrets: (string | undefined)[];
  /**
   * Aborted when the task is stopped (SIGTERM from StopTask or the local runner, SIGINT,
   * SIGHUP): the work stops its processes, removes what it had begun and stores nothing more.
   */
  readonly signal: AbortSignal;
}

/** Longer than this, setInterval fires every millisecond instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The heartbeat interval in milliseconds from PGBP_HEARTBEAT_SECONDS: a number of seconds, or a
 * duration as the config writes it (`60s`, `1m`); one minute when unset. Anything else is a
 * ConfigError, so a typo never turns into a heartbeat every millisecond.
 */
export function heartbeatInterval(raw: string | undefined): number {
  if (raw === undefined) return 60_000;
  const text = raw.trim();
  const ms = /^\d+(\.\d+)?$/.test(text) ? parseDuration(Number(text)) : parseDuration(text);
  if (ms === undefined || ms <= 0 || ms > MAX_TIMER_MS) {
    throw new ConfigError(
      `PGBP_HEARTBEAT_SECONDS: expected a number of seconds or a duration such as 60s or 1m (above 0, under 24 days), got ${JSON.stringify(raw)}`,
    );
  }
  return ms;
}

/** Step Functions caps task output at 256 KiB; keep well under it. */
const MAX_OUTPUT = 200 * 1024;

/**
 * Runs a task body and reports its end. With TASK_TOKEN set (on Fargate under Step Functions)
 * it heartbeats while running and sends success or failure with the typed error's name;
 * without one it prints the result as JSON on stdout. Returns the exit code.
 */
export async function runTask<T>(
  work: (context: TaskContext) => Promise<T>,
  deps: TaskDeps,
  summarize: (result: T) => unknown = (r) => r,
  what = 'the task',
): Promise<number> {
  const token = deps.env.TASK_TOKEN;
  const sfn = token ? deps.sfn?.() : undefined;
  if (token && !sfn) throw new Error('TASK_TOKEN is set but no Step Functions client was given');
  const interrupts = listenForInterrupts();
  const context: TaskContext = { secrets: [deps.env.PGPASSWORD], signal: interrupts.signal };
  let timer: NodeJS.Timeout | undefined;
  try {
    // A bad interval fails the task at start, through the token like any other failure.
    if (token && sfn) {
      const every = heartbeatInterval(deps.env.PGBP_HEARTBEAT_SECONDS);
      const stop = deps.stop ?? (() => process.kill(process.pid, 'SIGTERM'));
      timer = setInterval(() => {
        sfn.send(new SendTaskHeartbeatCommand({ taskToken: token })).catch((e: Error) => {
          deps.stderr.write(`heartbeat failed: ${e.name}: ${e.message}\n`);
          if (TOKEN_GONE.has(e.name)) {
            // An aborted execution runs no state that could stop this task: it stops itself.
            clearInterval(timer);
            stop();
          }
        });
      }, every);
      timer.unref();
    }
    const result = await work(context);
    if (token && sfn) {
      let output = JSON.stringify(summarize(result));
      if (output.length > MAX_OUTPUT)
        output = JSON.stringify({ truncated: true, note: 'result too large for Step Functions' });
      await sfn.send(new SendTaskSuccessCommand({ taskToken: token, output }));
    } else {
      deps.stdout.write(`${JSON.stringify(result)}\n`);
    }
    return 0;
  } catch (error) {
    const e = error as Error;
    const signal = interrupts.received();
    const message = signal
      ? `${what} was interrupted by ${signal}: its processes were stopped and what it had begun was removed`
      : redact(e.message ?? String(error), context.secrets)
          .split('\n')
          .join(' | ');
    const name = signal ? 'InterruptedError' : e.name && e.name !== 'Error' ? e.name : 'TaskFailedError';
    deps.stderr.write(`${name}: ${message}\n`);
    if (token && sfn) {
      await sfn
        .send(new SendTaskFailureCommand({ taskToken: token, error: name, cause: message.slice(0, 32_000) }))
        .catch((sendError: Error) =>
          deps.stderr.write(`reporting the failure failed: ${sendError.message}\n`),
        );
    }
    return signal ? exitCodeFor(signal) : 1;
  } finally {
    if (timer) clearInterval(timer);
    interrupts.dispose();
  }
}
