import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { type RunOptions, StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { createApplyRetentionHandler } from '../functions/apply-retention.js';
import { createCheckSizeHandler } from '../functions/check-size.js';
import { createNotifyHandler } from '../functions/notify.js';
import { createPrepareRestoreHandler } from '../functions/prepare-restore.js';
import { createThawBackupHandler } from '../functions/thaw-backup.js';
import type { Config } from '../lib/config.js';
import { ConfigError } from '../lib/domain/errors.js';
import type { Alerter } from '../lib/notify/alerter.js';
import { type Clock, systemClock } from '../lib/platform/clock.js';
import { throwIfInterrupted } from '../lib/platform/interrupts.js';
import type { LambdaFunction } from '../lib/platform/lambda.js';
import { type Logger, silentLogger } from '../lib/platform/logger.js';
import { type Child, startChild } from '../lib/platform/processes.js';
import { connectionFor } from '../lib/postgres/connection.js';
import {
  allStates,
  deployedMachineName,
  functionKeyOf,
  type Json,
  loadDefinition,
  localDefinition,
  type MachineName,
  polyfillWithResolvers,
  projectRoot,
} from '../lib/state-machines.js';
import type { BackupStore } from '../lib/storage/store.js';
import { databaseOf, type ExecutionError, type ExecutionResult, type StepEvent } from './executions.js';
import { taskBundleDir } from './task-bundle.js';

/**
 * The embedded default: the real ASL files run in-process by aws-local-stepfunctions, each Task
 * state bound by its Resource to its local implementation. The Fargate tasks run as child
 * processes of their own entrypoints (the bundle of tasks/*.ts the image runs, started without a
 * task token so they print their result); the Lambdas run in-process through their factories
 * with local ports. What a state machine does with answers and failures is what it does on AWS.
 */

export interface LocalRunOptions {
  readonly machine: MachineName;
  readonly input: Json;
  readonly config: Config;
  /** The config file the task processes load (PGBP_CONFIG). */
  readonly configFile: string;
  /** The store the Lambdas use; the tasks get its URL (PGBP_STORE), so both see the same one. */
  readonly store: BackupStore;
  /** The secondary store, where the config names one (the tasks open it from the config). */
  readonly secondary?: BackupStore;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly alerter: Alerter;
  readonly clock?: Clock;
  /** The Lambdas' structured logs; silent unless given. */
  readonly logger?: Logger;
  /** The tasks' structured log lines (their stderr); dropped unless given. */
  readonly taskLog?: (line: string) => void;
  readonly onStep?: (event: StepEvent) => void;
  /** Placeholder values over the config's (a short thaw poll, say). */
  readonly substitutions?: Readonly<Record<string, string>>;
  /** The execution's name (the last part of its id); a fresh one by default. */
  readonly name?: string;
  /** The checkout holding statemachines/ and tasks/. */
  readonly root?: string;
  /**
   * Aborted when the run is interrupted: the execution stops where it is, the task processes
   * are stopped (and clean up after themselves) and this throws once they have exited.
   */
  readonly signal?: AbortSignal;
}

/** The Resource of the Fargate task states. */
const RUN_TASK = 'arn:aws:states:::ecs:runTask.waitForTaskToken';
/** The states that find and stop what a task state started (its StartedBy), on every way out of it. */
const LIST_TASKS = 'arn:aws:states:::aws-sdk:ecs:listTasks';
const STOP_TASK = 'arn:aws:states:::aws-sdk:ecs:stopTask';

/** The account in local ARNs. */
const LOCAL_ACCOUNT = '000000000000';

function typedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

interface ContainerOverride {
  readonly Command?: readonly string[];
  readonly Environment?: readonly { readonly Name: string; readonly Value: string }[];
}

/** `ErrorName: message`, the one line a task writes on stderr when it fails (tasks/task-runner.ts). */
const ERROR_LINE = /^([A-Za-z][\w.]*(?:Error|Exception)|States\.[A-Za-z]+): (.*)$/;

/** A task process started by a runTask state, as ECS would list it. */
interface LocalTask {
  readonly arn: string;
  readonly startedBy: string | undefined;
}

interface TaskRun {
  /** The running task processes; a process leaves when it exits. */
  readonly children: Map<Child, LocalTask>;
  readonly bundleDir: () => Promise<string>;
  readonly options: LocalRunOptions;
}

/**
 * A runTask state, run here: the container's command and environment from the state's
 * parameters, the task token left out. Exit 0 → the JSON the task printed; otherwise the typed
 * error of its last stderr line, so the state's Retry and Catch match as on AWS.
 */
async function runContainer(parameters: Json, run: TaskRun): Promise<Json> {
  const override = (parameters as { Overrides?: { ContainerOverrides?: ContainerOverride[] } })?.Overrides
    ?.ContainerOverrides?.[0];
  const command = override?.Command ?? [];
  const entry = command[0] === 'node' ? /^dist\/tasks\/([a-z][a-z-]*)\.mjs$/.exec(command[1] ?? '') : null;
  if (!entry) {
    throw new ConfigError(`no local implementation of the container command ${JSON.stringify(command)}`);
  }
  const script = join(await run.bundleDir(), `${entry[1]}.mjs`);
  const { options } = run;
  const env: NodeJS.ProcessEnv = {
    ...options.env,
    PGBP_CONFIG: options.configFile,
    PGBP_STORE: options.store.url,
  };
  delete env.TASK_TOKEN;
  for (const { Name, Value } of override?.Environment ?? []) if (Name !== 'TASK_TOKEN') env[Name] = Value;

  let lastError: RegExpExecArray | undefined;
  const lastLines: string[] = [];
  const child = startChild(process.execPath, [script], {
    tool: `the ${entry[1]} task`,
    cwd: options.cwd,
    env,
    stdout: 'pipe',
    // Stopped, a task stops its own processes and removes what it had begun: give it time to.
    graceMs: 30_000,
    onStderrLine: (line) => {
      const error = ERROR_LINE.exec(line);
      if (error) lastError = error;
      else options.taskLog?.(line);
      lastLines.push(line);
      if (lastLines.length > 5) lastLines.shift();
    },
  });
  const startedBy = (parameters as { StartedBy?: string } | null)?.StartedBy;
  const cluster = String((parameters as { Cluster?: string } | null)?.Cluster ?? '');
  run.children.set(child, {
    arn: `${cluster.replace(':cluster/', ':task/')}/${randomUUID().replace(/-/g, '')}`,
    startedBy,
  });
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  const exit = await child.exited;
  run.children.delete(child);
  if (exit.spawnError) throw exit.spawnError;
  if (exit.code === 0) {
    const result = stdout.trim().split('\n').at(-1) ?? '';
    try {
      return JSON.parse(result) as Json;
    } catch {
      throw typedError('TaskFailedError', `the ${entry[1]} task printed no JSON result`);
    }
  }
  if (lastError) throw typedError(lastError[1] as string, lastError[2] as string);
  const how = exit.signal ? `was stopped by ${exit.signal}` : `exited with ${exit.code}`;
  throw typedError('TaskFailedError', `the ${entry[1]} task ${how}: ${lastLines.join(' | ')}`);
}

type Handler = (input: Json) => Promise<Json>;

function lambdas(options: LocalRunOptions): Record<string, LambdaFunction<unknown>> {
  const { store, config, alerter } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const secondary = options.secondary ? { secondary: options.secondary } : {};
  // Prepare and Thaw read the nearest copy of the backup the restore task will read.
  const stores = options.secondary
    ? {
        stores: [
          { role: 'primary' as const, store, storageClass: config.storageClass },
          { role: 'secondary' as const, store: options.secondary, storageClass: config.storageClass },
        ],
      }
    : {};
  return {
    checkSize: createCheckSizeHandler({ store, ...secondary, config, logger }),
    applyRetention: createApplyRetentionHandler({ store, ...secondary, config, alerter, clock, logger }),
    notify: createNotifyHandler({ alerter, clock, logger }),
    prepareRestore: createPrepareRestoreHandler({
      store,
      ...stores,
      logger,
      connection: (database) => connectionFor(config, options.env, database),
    }),
    thawBackup: createThawBackupHandler({ store, ...stores, policy: config.defaults.restore, logger }),
  };
}

/** ecs:ListTasks here: the task processes of this run still running, by StartedBy. */
function listTasks(parameters: Json, run: TaskRun): Json {
  const startedBy = (parameters as { StartedBy?: string } | null)?.StartedBy;
  const TaskArns = [...run.children.values()].filter((t) => t.startedBy === startedBy).map((t) => t.arn);
  return { TaskArns };
}

/** ecs:StopTask here: SIGTERM to the task process, as ECS sends the container. */
function stopTask(parameters: Json, run: TaskRun): Json {
  const arn = (parameters as { Task?: string } | null)?.Task;
  for (const [child, task] of run.children) if (task.arn === arn) child.stop();
  return { Task: { TaskArn: arn ?? null, DesiredStatus: 'STOPPED' } };
}

/** Every Task state of a machine bound to local code by its Resource, as written in the ASL file. */
function bindTasks(machine: MachineName, root: string, run: TaskRun): Record<string, Handler> {
  const functions = lambdas(run.options);
  const handlers: Record<string, Handler> = {};
  const resources = new Map<string, string>();
  for (const { name, state } of allStates(loadDefinition(machine, root))) {
    if (state.Type !== 'Task') continue;
    const resource = String(state.Resource);
    // aws-local-stepfunctions binds by state name across nested scopes: one name, one resource.
    const seen = resources.get(name);
    if (seen !== undefined && seen !== resource) {
      throw new ConfigError(`${machine}: two Task states named ${name} with different resources`);
    }
    resources.set(name, resource);
    if (resource === RUN_TASK) {
      handlers[name] = (input) => runContainer(input, run);
      continue;
    }
    if (resource === LIST_TASKS) {
      handlers[name] = async (input) => listTasks(input, run);
      continue;
    }
    if (resource === STOP_TASK) {
      handlers[name] = async (input) => stopTask(input, run);
      continue;
    }
    const key = functionKeyOf(resource);
    const fn = key ? functions[key] : undefined;
    if (!fn) throw new ConfigError(`${machine}: no local implementation of ${name} (${resource})`);
    handlers[name] = async (input) => (await fn(input, { awsRequestId: randomUUID() })) as Json;
  }
  return handlers;
}

function errorOf(error: unknown): ExecutionError {
  // ExecutionError carries the state machine's error (its name and cause) as its cause.
  const e = error as Error & { cause?: unknown };
  const inner = e.cause instanceof Error ? e.cause : e;
  return { name: inner.name, cause: inner.message };
}

/** Runs one execution of a machine on this machine; the result says how it ended, it does not throw for a failed execution. */
export async function runLocalExecution(options: LocalRunOptions): Promise<ExecutionResult> {
  polyfillWithResolvers();
  const root = options.root ?? projectRoot();
  const started = Date.now();
  const machineName = deployedMachineName(options.config.stage, options.machine);
  const name =
    options.name ??
    `local-${new Date(started).toISOString().replace(/[:.]/g, '')}-${randomBytes(3).toString('hex')}`;
  const executionId = `arn:aws:states:${options.config.region}:${LOCAL_ACCOUNT}:execution:${machineName}:${name}`;

  let bundle: Promise<string> | undefined;
  const run: TaskRun = {
    children: new Map(),
    bundleDir: () => {
      bundle ??= taskBundleDir(root);
      return bundle;
    },
    options,
  };
  const handlers = bindTasks(options.machine, root, run);
  const definition = localDefinition(options.machine, options.config, options.substitutions ?? {}, root);
  const machine = new StateMachine(definition as unknown as StateMachineDefinition);
  const runOptions: RunOptions = {
    overrides: {
      taskResourceLocalHandlers: handlers as NonNullable<
        RunOptions['overrides']
      >['taskResourceLocalHandlers'],
    },
    context: {
      Execution: {
        Id: executionId,
        Name: name,
        StartTime: new Date(started).toISOString(),
        Input: options.input,
      },
      // runTask.waitForTaskToken reads it; the local tasks report on stdout instead.
      Task: { Token: `local-${name}` },
    },
  };

  const stateOutputs: Record<string, Json> = {};
  const enteredAt = new Map<string, number>();
  const failed = new Set<string>();
  throwIfInterrupted(options.signal);
  const execution = machine.run(options.input, runOptions);
  // Interrupted: no further state runs, and each task process stops its own children.
  const stop = () => {
    execution.abort();
    for (const child of run.children.keys()) child.stop();
  };
  options.signal?.addEventListener('abort', stop, { once: true });
  let followFailure: unknown;
  const followed = (async () => {
    for await (const event of execution.eventLogs) {
      if (!('state' in event)) continue;
      const state = event.state;
      const nested = event.index !== undefined;
      const key = `${state.name}|${event.index ?? ''}`;
      const base = {
        state: state.name,
        type: state.type,
        nested,
        ...(databaseOf(state.input) ? { database: databaseOf(state.input) } : {}),
      };
      switch (event.type) {
        case 'StateEntered':
          enteredAt.set(key, event.timestamp);
          options.onStep?.({ kind: 'entered', ...base });
          break;
        case 'StateExited': {
          // A state whose error was caught exits too; it did not succeed.
          if (failed.delete(key)) break;
          const since = enteredAt.get(key);
          if (!nested && state.output !== undefined) stateOutputs[state.name] = state.output;
          options.onStep?.({
            kind: 'succeeded',
            ...base,
            ...(since !== undefined ? { seconds: (event.timestamp - since) / 1000 } : {}),
          });
          break;
        }
        case 'StateFailed':
          failed.add(key);
          // A Fail state's error is the execution's, which the caller reports once.
          if (state.type !== 'Fail') {
            options.onStep?.({
              kind: 'failed',
              ...base,
              error: { name: event.Error, cause: String(event.Cause ?? '') },
            });
          }
          break;
        case 'StateRetried':
          failed.delete(key);
          options.onStep?.({ kind: 'retried', ...base });
          break;
        case 'StateCaught':
          options.onStep?.({ kind: 'caught', ...base, next: event.catch.catcher.Next });
          break;
      }
    }
  })().catch((e: unknown) => {
    // Kept for after the execution: a printing failure must not leave it running unobserved.
    followFailure = e;
  });

  let output: Json | undefined;
  let error: ExecutionError | undefined;
  try {
    output = await execution.result;
  } catch (e) {
    error = errorOf(e);
  } finally {
    options.signal?.removeEventListener('abort', stop);
    // The machine stops what it started on its own paths; this covers an execution that ended
    // some other way (a runtime error, an interruption) with a task process still running.
    const left = [...run.children.keys()];
    for (const child of left) child.stop();
    // Each one removes what it had begun before it exits: nothing may outlive this run.
    await Promise.all(left.map((child) => child.exited));
  }
  await followed;
  throwIfInterrupted(options.signal);
  if (followFailure) throw followFailure;
  return {
    machine: options.machine,
    executionId,
    status: error ? 'FAILED' : 'SUCCEEDED',
    ...(output !== undefined ? { output } : {}),
    ...(error ? { error } : {}),
    stateOutputs,
    seconds: (Date.now() - started) / 1000,
  };
}
