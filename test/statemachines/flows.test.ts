import type { RunOptions } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  forLocalRun,
  LOCAL_SUBSTITUTIONS,
  loadDefinition,
  localMachine,
  type MachineName,
  polyfillWithResolvers,
  substitute,
} from './asl.js';

/**
 * The real ASL files, run in-process by aws-local-stepfunctions with each Task state bound by its
 * name to a stand-in: what the flow does with the answers and failures of its tasks, in
 * milliseconds and without AWS. The stand-ins' inputs are what the real tasks would receive.
 */

type Handler = (input: Record<string, unknown>) => Promise<unknown>;

interface Run {
  readonly output?: unknown;
  readonly error?: { readonly name: string; readonly message: string };
  /** Task states entered, in order. */
  readonly calls: { readonly state: string; readonly input: Record<string, unknown> }[];
  /** The Fargate tasks the run started, as ECS would see them. */
  readonly tasks: EcsTask[];
}

interface EcsTask {
  readonly arn: string;
  readonly database: string;
  readonly startedBy: string;
  running: boolean;
  stopped: boolean;
  /** Tasks of the same database still running when this one started. */
  readonly besides: number;
}

/** The runTask states and the states that find and stop what they started. */
const RUN_TASK_STATES = new Set(['Dump', 'VerifyRestore', 'Restore', 'BaseBackup', 'RecoverCluster']);
const LIST_STATES = new Set([
  'FindDumpTasks',
  'FindVerifyTasks',
  'FindRestoreTasks',
  'FindBaseBackupTasks',
  'FindDrillTasks',
]);
const STOP_STATES = new Set([
  'StopDumpTask',
  'StopVerifyTask',
  'StopRestoreTask',
  'StopBaseBackupTask',
  'StopDrillTask',
]);
/** How Step Functions fails a state whose container went silent or ran too long: the container runs on. */
const CONTAINER_STILL_RUNNING = new Set(['States.HeartbeatTimeout', 'States.Timeout']);

beforeAll(() => polyfillWithResolvers());

const EXECUTION_ARN = 'arn:aws:states:eu-west-1:123456789012:execution:pgbp-test:run-1';

function typedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

async function run(
  machine: MachineName,
  input: NonNullable<Parameters<ReturnType<typeof localMachine>['run']>[0]>,
  handlers: Record<string, Handler>,
  substitutions: Record<string, string> = {},
): Promise<Run> {
  const definition = forLocalRun(
    substitute(loadDefinition(machine), { ...LOCAL_SUBSTITUTIONS, ...substitutions }),
    30,
  );
  const calls: { state: string; input: Record<string, unknown> }[] = [];
  const tasks: EcsTask[] = [];
  // ECS, as far as these machines use it: RunTask starts a task that runs until its work ends,
  // or on when Step Functions gave up on it; ListTasks by StartedBy; StopTask.
  const ecs: Record<string, Handler> = {};
  for (const state of LIST_STATES) {
    ecs[state] = async (input) => ({
      TaskArns: tasks.filter((t) => t.running && t.startedBy === input.StartedBy).map((t) => t.arn),
    });
  }
  for (const state of STOP_STATES) {
    ecs[state] = async (input) => {
      const task = tasks.find((t) => t.arn === input.Task);
      if (task) Object.assign(task, { running: false, stopped: true });
      return { Task: { TaskArn: input.Task } };
    };
  }
  const withEcs = (state: string, fn: Handler): Handler =>
    RUN_TASK_STATES.has(state)
      ? async (input) => {
          const database = taskEnv(input).PGBP_DATABASE as string;
          const task: EcsTask = {
            arn: `arn:aws:ecs:eu-west-1:123456789012:task/pgbp/${tasks.length + 1}`,
            database,
            startedBy: String(input.StartedBy),
            running: true,
            stopped: false,
            besides: tasks.filter((t) => t.running && t.database === database).length,
          };
          tasks.push(task);
          try {
            const result = await fn(input);
            task.running = false;
            return result;
          } catch (error) {
            if (!CONTAINER_STILL_RUNNING.has((error as Error).name)) task.running = false;
            throw error;
          }
        }
      : fn;
  const bound = Object.fromEntries(
    Object.entries({ ...ecs, ...handlers }).map(([state, fn]) => [
      state,
      async (stateInput: Record<string, unknown>) => {
        calls.push({ state, input: stateInput });
        return withEcs(state, fn)(stateInput);
      },
    ]),
  );
  const options: RunOptions = {
    overrides: {
      // The stand-ins take the state's effective input, which for these states is always an object.
      taskResourceLocalHandlers: bound as unknown as NonNullable<
        RunOptions['overrides']
      >['taskResourceLocalHandlers'],
      waitTimeOverrides: { WaitForThaw: 0, WaitForStoppedDump: 0, WaitForStoppedVerify: 0 },
      retryIntervalOverrides: Object.fromEntries(Object.keys(bound).map((s) => [s, 0])),
    },
    context: { Execution: { Id: EXECUTION_ARN }, Task: { Token: 'task-token' } },
  };
  const execution = localMachine(definition).run(input, options);
  try {
    return { output: await execution.result, calls, tasks };
  } catch (error) {
    const cause = (error as Error & { cause?: Error }).cause ?? (error as Error);
    return { error: { name: cause.name, message: cause.message }, calls, tasks };
  }
}

/** The container environment a runTask state would start the task with. */
function taskEnv(input: Record<string, unknown>): Record<string, string> {
  const overrides = input.Overrides as {
    ContainerOverrides: { Environment: { Name: string; Value: string }[] }[];
  };
  return Object.fromEntries(overrides.ContainerOverrides[0]?.Environment.map((e) => [e.Name, e.Value]) ?? []);
}

function manifestFor(database: string) {
  return {
    id: `${database}-20260620T020000Z`,
    database,
    tier: 'daily',
    sizeBytes: 4096,
    sha256: 'f'.repeat(64),
  };
}

function callsTo(result: Run, state: string) {
  return result.calls.filter((c) => c.state === state).map((c) => c.input);
}

describe('the backup state machine', () => {
  const healthy: Record<string, Handler> = {
    Dump: async (input) => manifestFor(taskEnv(input).PGBP_DATABASE as string),
    CheckSize: async (input) => ({ database: input.database, backupId: input.backupId, status: 'ok' }),
    NotifyWarning: async () => ({}),
    NotifyFailure: async () => ({}),
    ApplyRetention: async () => ({ dryRun: false, databases: [] }),
  };

  it('backs up every configured database, checks each size, then applies retention, with no alert', async () => {
    const result = await run('backup', {}, healthy);
    expect(result.error).toBeUndefined();
    expect(
      callsTo(result, 'Dump')
        .map((i) => taskEnv(i).PGBP_DATABASE)
        .sort(),
    ).toEqual(['alpha', 'beta']);
    expect(
      callsTo(result, 'CheckSize')
        .map((i) => i.backupId)
        .sort(),
    ).toEqual(['alpha-20260620T020000Z', 'beta-20260620T020000Z']);
    expect(callsTo(result, 'ApplyRetention')).toEqual([{ dryRun: false }]);
    expect(result.calls.at(-1)?.state).toBe('ApplyRetention');
    expect(callsTo(result, 'NotifyWarning')).toEqual([]);
    expect(callsTo(result, 'NotifyFailure')).toEqual([]);
    expect(result.output).toMatchObject({
      databases: [
        { database: 'alpha', status: 'succeeded', backupId: 'alpha-20260620T020000Z' },
        { database: 'beta', status: 'succeeded', backupId: 'beta-20260620T020000Z' },
      ],
    });
  });

  it('backs up the databases the input names instead of the configured ones', async () => {
    const result = await run('backup', { databases: ['gamma'] }, healthy);
    expect(callsTo(result, 'Dump').map((i) => taskEnv(i).PGBP_DATABASE)).toEqual(['gamma']);
  });

  it('starts the dump task with its command, the database, the task token and the network', async () => {
    const result = await run('backup', { databases: ['alpha'] }, healthy);
    const [input] = callsTo(result, 'Dump');
    expect(input).toMatchObject({
      Cluster: LOCAL_SUBSTITUTIONS.EcsClusterArn,
      TaskDefinition: LOCAL_SUBSTITUTIONS.DumpTaskDefinitionArn,
      LaunchType: 'FARGATE',
      NetworkConfiguration: {
        AwsvpcConfiguration: {
          Subnets: ['subnet-0001', 'subnet-0002'],
          SecurityGroups: ['sg-0001'],
          AssignPublicIp: 'DISABLED',
        },
      },
      Overrides: { ContainerOverrides: [{ Name: 'pgbp', Command: ['node', 'dist/tasks/dump.mjs'] }] },
    });
    expect(taskEnv(input ?? {})).toEqual({ PGBP_DATABASE: 'alpha', TASK_TOKEN: 'task-token' });
  });

  it('keeps backing up the other databases when one dump fails, alerts naming it, and fails at the end', async () => {
    const result = await run(
      'backup',
      {},
      {
        ...healthy,
        Dump: async (input) => {
          const database = taskEnv(input).PGBP_DATABASE as string;
          if (database === 'alpha')
            throw typedError('DumpFailedError', 'pg_dump: password authentication failed');
          return manifestFor(database);
        },
      },
    );
    expect(callsTo(result, 'CheckSize').map((i) => i.database)).toEqual(['beta']);
    expect(callsTo(result, 'ApplyRetention')).toHaveLength(1);
    expect(callsTo(result, 'NotifyFailure')).toEqual([
      {
        kind: 'backup-failed',
        database: 'alpha',
        execution: EXECUTION_ARN,
        error: { Error: 'DumpFailedError', Cause: 'pg_dump: password authentication failed' },
      },
    ]);
    expect(result.error?.name).toBe('BackupFailed');
  });

  it('stops a dump whose container went silent, then dumps once more with no second pg_dump beside it', async () => {
    let silent = true;
    const result = await run(
      'backup',
      { databases: ['alpha'] },
      {
        ...healthy,
        Dump: async (input) => {
          if (silent) {
            silent = false;
            // Step Functions gives up after HeartbeatSeconds without a heartbeat; the container runs on.
            throw typedError('States.HeartbeatTimeout', 'no heartbeat for 300 s');
          }
          return manifestFor(taskEnv(input).PGBP_DATABASE as string);
        },
      },
    );
    expect(result.error).toBeUndefined();
    const [first, second] = result.tasks;
    expect(result.tasks).toHaveLength(2);
    expect(first).toMatchObject({ database: 'alpha', stopped: true, running: false });
    expect(second).toMatchObject({ database: 'alpha', stopped: false, besides: 0 });
    expect(first?.startedBy).not.toBe(second?.startedBy);
    // Stopped before the second attempt started.
    const order = result.calls.map((c) => c.state);
    expect(order.indexOf('StopDumpTask')).toBeLessThan(order.lastIndexOf('Dump'));
    expect(callsTo(result, 'StopDumpTask')).toEqual([
      expect.objectContaining({ Cluster: LOCAL_SUBSTITUTIONS.EcsClusterArn, Task: first?.arn }),
    ]);
    expect(callsTo(result, 'NotifyFailure')).toEqual([]);
  });

  it('stops a dump that ran past its timeout, alerts it and does not start another', async () => {
    const result = await run(
      'backup',
      { databases: ['alpha'] },
      {
        ...healthy,
        Dump: async () => {
          throw typedError('States.Timeout', 'the dump ran past 21600 s');
        },
      },
    );
    expect(result.tasks).toEqual([expect.objectContaining({ stopped: true, running: false })]);
    expect(callsTo(result, 'NotifyFailure')).toEqual([
      expect.objectContaining({
        database: 'alpha',
        error: expect.objectContaining({ Error: 'States.Timeout' }),
      }),
    ]);
    expect(result.error?.name).toBe('BackupFailed');
  });

  it('stops a container that stays silent twice, and alerts it', async () => {
    const result = await run(
      'backup',
      { databases: ['alpha'] },
      {
        ...healthy,
        Dump: async () => {
          throw typedError('States.HeartbeatTimeout', 'no heartbeat for 300 s');
        },
      },
    );
    expect(result.tasks.map((t) => [t.stopped, t.besides])).toEqual([
      [true, 0],
      [true, 0],
    ]);
    expect(callsTo(result, 'NotifyFailure')).toHaveLength(1);
    expect(result.error?.name).toBe('BackupFailed');
  });

  it('fails the execution even when the failure alert itself cannot be delivered', async () => {
    const result = await run(
      'backup',
      {},
      {
        ...healthy,
        Dump: async () => {
          throw typedError('VersionMismatchError', 'pg_dump 15 cannot dump server 17');
        },
        NotifyFailure: async () => {
          throw typedError('AlertDeliveryError', 'SNS refused');
        },
      },
    );
    expect(result.error?.name).toBe('BackupFailed');
  });

  it('alerts a size warning and still counts the backup as good', async () => {
    const result = await run(
      'backup',
      { databases: ['alpha'] },
      {
        ...healthy,
        CheckSize: async (input) => ({
          database: input.database,
          status: 'warning',
          reasons: ['40 % of the baseline'],
        }),
      },
    );
    expect(result.error).toBeUndefined();
    expect(callsTo(result, 'NotifyWarning')).toEqual([
      {
        kind: 'size-anomaly',
        database: 'alpha',
        backupId: 'alpha-20260620T020000Z',
        execution: EXECUTION_ARN,
        verdict: { database: 'alpha', status: 'warning', reasons: ['40 % of the baseline'] },
      },
    ]);
  });

  it('alerts a dump that one store failed to take as degraded, naming the store, and counts the backup', async () => {
    const copies = [
      { role: 'primary', url: 'file:///nas/pg-backups', status: 'stored', key: 'alpha/x.dump' },
      {
        role: 'secondary',
        url: 's3://bucket/backups',
        status: 'failed',
        error: { name: 'TimeoutError', message: 'connect ETIMEDOUT' },
      },
    ];
    const result = await run(
      'backup',
      { databases: ['alpha'] },
      {
        ...healthy,
        Dump: async () => ({ ...manifestFor('alpha'), copies, degraded: true }),
        NotifyDegraded: async () => ({}),
      },
    );
    expect(result.error).toBeUndefined();
    expect(callsTo(result, 'NotifyDegraded')).toEqual([
      {
        kind: 'backup-degraded',
        database: 'alpha',
        backupId: 'alpha-20260620T020000Z',
        execution: EXECUTION_ARN,
        copies,
      },
    ]);
    expect(callsTo(result, 'NotifyFailure')).toEqual([]);
    expect(callsTo(result, 'ApplyRetention')).toEqual([{ dryRun: false }]);
    expect(result.output).toMatchObject({
      databases: [{ database: 'alpha', status: 'degraded', backupId: 'alpha-20260620T020000Z' }],
    });
  });

  it('alerts what the sync after a good dump left apart, naming the store, and the backup succeeds', async () => {
    const syncProblems = {
      count: 1,
      shown: [
        {
          role: 'secondary',
          url: 's3://bucket/backups',
          status: 'conflict',
          subject: 'WAL segment 000000010000000000000003 of cluster main',
          cause:
            'the primary store holds it with sha256 aa, the secondary store with bb: neither is replaced',
        },
      ],
    };
    const result = await run(
      'backup',
      { databases: ['alpha', 'beta'] },
      {
        ...healthy,
        Dump: async (input) => {
          const database = taskEnv(input).PGBP_DATABASE as string;
          return {
            ...manifestFor(database),
            degraded: false,
            syncProblems: database === 'alpha' ? syncProblems : { count: 0, shown: [] },
          };
        },
        NotifySyncProblems: async () => {
          throw typedError('AlertDeliveryError', 'the topic is gone');
        },
      },
    );
    expect(result.error).toBeUndefined();
    // Retried as any alert, then given up on: the backup stands.
    expect(callsTo(result, 'NotifySyncProblems')).toEqual(
      Array(4).fill({
        kind: 'store-sync-failed',
        database: 'alpha',
        backupId: 'alpha-20260620T020000Z',
        execution: EXECUTION_ARN,
        syncProblems,
      }),
    );
    expect(callsTo(result, 'NotifyFailure')).toEqual([]);
    expect(callsTo(result, 'ApplyRetention')).toEqual([{ dryRun: false }]);
    expect(result.output).toMatchObject({
      databases: [
        { database: 'alpha', status: 'succeeded' },
        { database: 'beta', status: 'succeeded' },
      ],
    });
  });

  it('sends no sync alert for a degraded dump, whose alert names the failed store already', async () => {
    const copies = [
      { role: 'primary', url: 'file:///nas/pg-backups', status: 'stored', key: 'alpha/x.dump' },
      {
        role: 'secondary',
        url: 's3://bucket/backups',
        status: 'failed',
        error: { name: 'TimeoutError', message: 'connect ETIMEDOUT' },
      },
    ];
    const unreadable = {
      role: 'secondary',
      url: 's3://bucket/backups',
      status: 'failed',
      subject: 'the physical archive of cluster main: not synced',
      cause: 'connect ETIMEDOUT',
    };
    const result = await run(
      'backup',
      { databases: ['alpha'] },
      {
        ...healthy,
        Dump: async () => ({
          ...manifestFor('alpha'),
          copies,
          degraded: true,
          syncProblems: { count: 1, shown: [unreadable] },
        }),
        NotifyDegraded: async () => ({}),
        NotifySyncProblems: async () => ({}),
      },
    );
    expect(result.error).toBeUndefined();
    expect(callsTo(result, 'NotifyDegraded')).toHaveLength(1);
    expect(callsTo(result, 'NotifySyncProblems')).toEqual([]);
  });

  it('alerts a size out of range as a size anomaly and fails the execution', async () => {
    const result = await run(
      'backup',
      { databases: ['alpha'] },
      {
        ...healthy,
        CheckSize: async () => {
          throw typedError('SizeOutOfRangeError', 'backup alpha-20260620T020000Z: 3 bytes, an empty dump');
        },
      },
    );
    expect(callsTo(result, 'NotifyFailure')).toEqual([
      expect.objectContaining({
        kind: 'size-anomaly',
        database: 'alpha',
        error: expect.objectContaining({ Error: 'SizeOutOfRangeError' }),
      }),
    ]);
    expect(result.error?.name).toBe('BackupFailed');
  });

  it('alerts a failed retention and fails with its error', async () => {
    const result = await run(
      'backup',
      {},
      {
        ...healthy,
        ApplyRetention: async () => {
          throw typedError('RetentionBlockedError', 'the newest good backup of alpha is 30 h old');
        },
        NotifyRetentionBlocked: async () => ({}),
      },
    );
    expect(callsTo(result, 'NotifyRetentionBlocked')).toEqual([
      expect.objectContaining({
        kind: 'retention-blocked',
        error: expect.objectContaining({ Error: 'RetentionBlockedError' }),
      }),
    ]);
    expect(result.error?.name).toBe('RetentionBlockedError');
  });
});

describe('the restore-drill state machine', () => {
  const report = (database: string, seconds: number) => ({
    backupId: `${database}-20260620T020000Z`,
    mode: 'verify',
    target: `pgbp_verify_${database}`,
    recoverySeconds: seconds,
    checks: [{ name: 'tables exist', passed: true }],
  });

  it('restores the latest backup of each database in verify mode and reports the RTO of each', async () => {
    const result = await run(
      'restore-drill',
      {},
      {
        VerifyRestore: async (input) => {
          const env = taskEnv(input);
          return report(env.PGBP_DATABASE as string, env.PGBP_DATABASE === 'alpha' ? 42.5 : 7);
        },
        NotifyFailure: async () => ({}),
      },
    );
    expect(result.error).toBeUndefined();
    const requests = callsTo(result, 'VerifyRestore').map((i) =>
      JSON.parse(taskEnv(i).PGBP_RESTORE_REQUEST as string),
    );
    expect(requests).toEqual(
      expect.arrayContaining([
        { mode: 'verify', database: 'alpha', backup: 'latest' },
        { mode: 'verify', database: 'beta', backup: 'latest' },
      ]),
    );
    expect(result.output).toEqual({
      databasesChecked: 2,
      databases: [
        { database: 'alpha', status: 'verified', backupId: 'alpha-20260620T020000Z', recoverySeconds: 42.5 },
        { database: 'beta', status: 'verified', backupId: 'beta-20260620T020000Z', recoverySeconds: 7 },
      ],
    });
  });

  it('stops a drill restore whose container went silent before restoring again', async () => {
    let silent = true;
    const result = await run(
      'restore-drill',
      { databases: ['alpha'] },
      {
        VerifyRestore: async (input) => {
          if (silent) {
            silent = false;
            throw typedError('States.HeartbeatTimeout', 'no heartbeat for 300 s');
          }
          return report(taskEnv(input).PGBP_DATABASE as string, 4);
        },
        NotifyFailure: async () => ({}),
      },
    );
    expect(result.error).toBeUndefined();
    expect(result.tasks.map((t) => [t.stopped, t.besides])).toEqual([
      [true, 0],
      [false, 0],
    ]);
  });

  it('alerts a backup that does not restore, drills the others, and fails', async () => {
    const result = await run(
      'restore-drill',
      {},
      {
        VerifyRestore: async (input) => {
          const database = taskEnv(input).PGBP_DATABASE as string;
          if (database === 'beta') throw typedError('CorruptBackupError', 'sha256 mismatch');
          return report(database, 3);
        },
        NotifyFailure: async () => ({}),
      },
    );
    expect(callsTo(result, 'VerifyRestore')).toHaveLength(2);
    expect(callsTo(result, 'NotifyFailure')).toEqual([
      {
        kind: 'restore-check-failed',
        database: 'beta',
        execution: EXECUTION_ARN,
        error: { Error: 'CorruptBackupError', Cause: 'sha256 mismatch' },
      },
    ]);
    expect(result.error?.name).toBe('RestoreCheckFailedError');
  });
});

describe('the restore state machine', () => {
  const request = {
    database: 'alpha',
    backup: 'latest',
    targetDatabase: 'alpha_restored',
    schemas: ['core'],
  };
  const pinned = {
    mode: 'restore',
    database: 'alpha',
    backup: 'alpha-20260601T020000Z',
    targetDatabase: 'alpha_restored',
    schemas: ['core'],
    replace: false,
  };
  const prepared = (archived: boolean) => ({
    request: pinned,
    backupId: 'alpha-20260601T020000Z',
    key: 'backups/alpha/2026/06/01/alpha-20260601T020000Z.dump',
    archived,
    storageClass: archived ? 'GLACIER' : 'STANDARD',
  });
  const restoreReport = {
    backupId: 'alpha-20260601T020000Z',
    mode: 'restore',
    target: 'alpha_restored',
    recoverySeconds: 12,
  };

  it('fails a bad request in Prepare, alerts it, and starts no task', async () => {
    const result = await run(
      'restore',
      { database: 'alpha', backup: 'latest', targetDatabase: 'alpha' },
      {
        Prepare: async () => {
          throw typedError('InvalidRestoreRequestError', 'targetDatabase: is the source database alpha');
        },
        NotifyRequestFailure: async () => ({}),
        Restore: async () => restoreReport,
      },
    );
    expect(callsTo(result, 'Restore')).toEqual([]);
    expect(callsTo(result, 'NotifyRequestFailure')).toEqual([
      expect.objectContaining({
        kind: 'restore-failed',
        error: expect.objectContaining({ Error: 'InvalidRestoreRequestError' }),
      }),
    ]);
    expect(result.error).toEqual({
      name: 'InvalidRestoreRequestError',
      message: 'targetDatabase: is the source database alpha',
    });
  });

  it('restores a readable backup with the pinned request and notifies the report', async () => {
    const result = await run('restore', request, {
      Prepare: async () => prepared(false),
      Thaw: async () => ({ state: 'not-archived' }),
      Restore: async () => restoreReport,
      NotifyRestored: async () => ({}),
    });
    expect(result.error).toBeUndefined();
    expect(callsTo(result, 'Prepare')).toEqual([request]);
    expect(callsTo(result, 'Thaw')).toEqual([]);
    const [restoreInput] = callsTo(result, 'Restore');
    expect(JSON.parse(taskEnv(restoreInput ?? {}).PGBP_RESTORE_REQUEST as string)).toEqual(pinned);
    expect(restoreInput).toMatchObject({
      Overrides: { ContainerOverrides: [{ Command: ['node', 'dist/tasks/restore.mjs'] }] },
    });
    expect(callsTo(result, 'NotifyRestored')).toEqual([
      {
        kind: 'restore-completed',
        database: 'alpha',
        backupId: 'alpha-20260601T020000Z',
        execution: EXECUTION_ARN,
        report: restoreReport,
      },
    ]);
    expect(result.output).toEqual({ backupId: 'alpha-20260601T020000Z', report: restoreReport });
  });

  it('thaws an archived backup, polls until it is available, then restores it', async () => {
    const states = ['requested', 'in-progress', 'available'];
    const result = await run('restore', request, {
      Prepare: async () => prepared(true),
      Thaw: async () => ({ state: states.shift() }),
      Restore: async () => restoreReport,
      NotifyRestored: async () => ({}),
    });
    expect(result.error).toBeUndefined();
    expect(callsTo(result, 'Thaw')).toEqual([
      { database: 'alpha', backupId: 'alpha-20260601T020000Z' },
      { database: 'alpha', backupId: 'alpha-20260601T020000Z' },
      { database: 'alpha', backupId: 'alpha-20260601T020000Z' },
    ]);
    expect(callsTo(result, 'Restore')).toHaveLength(1);
  });

  it('gives up on a thaw after the configured number of rounds with ArchivedBackupError, and restores nothing', async () => {
    const result = await run(
      'restore',
      request,
      {
        Prepare: async () => prepared(true),
        Thaw: async () => ({ state: 'in-progress' }),
        Restore: async () => restoreReport,
        NotifyRestoreFailure: async () => ({}),
      },
      { ThawPollRounds: '4' },
    );
    expect(callsTo(result, 'Thaw')).toHaveLength(4);
    expect(callsTo(result, 'Restore')).toEqual([]);
    expect(callsTo(result, 'NotifyRestoreFailure')).toEqual([
      expect.objectContaining({
        kind: 'restore-failed',
        database: 'alpha',
        error: expect.objectContaining({ Error: 'ArchivedBackupError' }),
      }),
    ]);
    expect(result.error?.name).toBe('ArchivedBackupError');
    expect(result.error?.message).toMatch(/still archived after 4 thaw checks/);
  });

  it('stops a restore whose container went silent, alerts it and does not restore again', async () => {
    const result = await run('restore', request, {
      Prepare: async () => prepared(false),
      Restore: async () => {
        throw typedError('States.HeartbeatTimeout', 'no heartbeat for 300 s');
      },
      NotifyRestoreFailure: async () => ({}),
    });
    expect(result.tasks).toEqual([expect.objectContaining({ database: 'alpha', stopped: true })]);
    expect(callsTo(result, 'NotifyRestoreFailure')).toEqual([
      expect.objectContaining({ error: expect.objectContaining({ Error: 'States.HeartbeatTimeout' }) }),
    ]);
    expect(result.error?.name).toBe('States.HeartbeatTimeout');
  });

  it('alerts a failed restore with the database and the backup, and fails with the task error', async () => {
    const result = await run('restore', request, {
      Prepare: async () => prepared(false),
      Restore: async () => {
        throw typedError('RestoreFailedError', 'pg_restore exited with 1');
      },
      NotifyRestoreFailure: async () => ({}),
    });
    expect(callsTo(result, 'NotifyRestoreFailure')).toEqual([
      {
        kind: 'restore-failed',
        database: 'alpha',
        backupId: 'alpha-20260601T020000Z',
        execution: EXECUTION_ARN,
        error: { Error: 'RestoreFailedError', Cause: 'pg_restore exited with 1' },
      },
    ]);
    expect(result.error?.name).toBe('RestoreFailedError');
  });
});

describe.each([
  {
    machine: 'base-backup' as const,
    task: 'BaseBackup',
    stop: 'StopBaseBackupTask',
    result: { id: '20261201T030000Z', startLsn: '0/2000028', stopLsn: '0/2000100', sizeBytes: 4096 },
  },
  {
    machine: 'pitr-drill' as const,
    task: 'RecoverCluster',
    stop: 'StopDrillTask',
    result: {
      baseId: '20261201T030000Z',
      target: 'the latest archived state',
      recoveryPoint: '2026-12-01T03:10:00Z',
      rtoSeconds: 12.5,
      segmentsReplayed: 9,
    },
  },
])('the $machine state machine', ({ machine, task, stop, result: answer }) => {
  it('starts its task with a StartedBy of its own and reports what the task answered', async () => {
    const result = await run(machine, {}, { [task]: async () => answer, NotifyFailure: async () => ({}) });
    expect(result.error).toBeUndefined();
    const [input] = callsTo(result, task);
    expect(typeof input?.StartedBy).toBe('string');
    expect(result.tasks).toEqual([expect.objectContaining({ startedBy: input?.StartedBy, stopped: false })]);
    expect(callsTo(result, stop)).toEqual([]);
    expect(callsTo(result, 'NotifyFailure')).toEqual([]);
    expect(result.output).toMatchObject({ cluster: 'main' });
  });

  it.each(['States.Timeout', 'States.HeartbeatTimeout'])(
    'stops the task that ran on past %s, alerts naming the cluster, and starts no other',
    async (error) => {
      const result = await run(
        machine,
        {},
        {
          [task]: async () => {
            throw typedError(error, 'the task ran past its time');
          },
          NotifyFailure: async () => ({}),
        },
      );
      expect(result.tasks).toEqual([expect.objectContaining({ running: false, stopped: true })]);
      expect(callsTo(result, stop)).toEqual([
        expect.objectContaining({ Cluster: LOCAL_SUBSTITUTIONS.EcsClusterArn, Task: result.tasks[0]?.arn }),
      ]);
      expect(callsTo(result, 'NotifyFailure')).toEqual([
        expect.objectContaining({
          database: 'cluster main',
          error: expect.objectContaining({ Error: error }),
        }),
      ]);
      expect(callsTo(result, task)).toHaveLength(1);
      expect(result.error?.name).toBe(error);
    },
  );

  it('stops nothing when the task itself failed and exited, and alerts its error', async () => {
    const result = await run(
      machine,
      {},
      {
        [task]: async () => {
          throw typedError('CorruptWalError', 'segment 000000010000000000000003 is damaged');
        },
        NotifyFailure: async () => ({}),
      },
    );
    expect(result.tasks).toEqual([expect.objectContaining({ running: false, stopped: false })]);
    expect(callsTo(result, stop)).toEqual([]);
    expect(callsTo(result, 'NotifyFailure')).toEqual([
      expect.objectContaining({ error: expect.objectContaining({ Error: 'CorruptWalError' }) }),
    ]);
    expect(result.error?.name).toBe('CorruptWalError');
  });
});

describe('the base-backup state machine with two stores', () => {
  it('alerts a base backup that one store lacks as degraded, naming the store and the cause, and succeeds', async () => {
    const copies = [
      {
        role: 'primary',
        url: 'file:///nas/pg-backups',
        status: 'stored',
        key: '~cluster/main/base/20261201T030000Z.manifest.json',
      },
      {
        role: 'secondary',
        url: 's3://bucket/backups',
        status: 'failed',
        error: {
          name: 'BaseBackupFailedError',
          message: 'the WAL of the base backup did not reach the archive within 300 s',
        },
      },
    ];
    const result = await run(
      'base-backup',
      {},
      {
        BaseBackup: async () => ({
          id: '20261201T030000Z',
          startLsn: '0/2000028',
          stopLsn: '0/2000100',
          sizeBytes: 4096,
          copies,
          degraded: true,
        }),
        NotifyDegraded: async () => ({}),
        NotifyFailure: async () => ({}),
      },
    );
    expect(result.error).toBeUndefined();
    expect(callsTo(result, 'NotifyDegraded')).toEqual([
      {
        kind: 'backup-degraded',
        database: 'cluster main',
        backupId: '20261201T030000Z',
        execution: EXECUTION_ARN,
        copies,
      },
    ]);
    expect(callsTo(result, 'NotifyFailure')).toEqual([]);
    expect(result.output).toMatchObject({ cluster: 'main', status: 'degraded', baseId: '20261201T030000Z' });
  });

  it('sends no degraded alert when both stores hold the base backup', async () => {
    const result = await run(
      'base-backup',
      {},
      {
        BaseBackup: async () => ({
          id: '20261201T030000Z',
          startLsn: '0/2000028',
          stopLsn: '0/2000100',
          sizeBytes: 4096,
          copies: [],
          degraded: false,
        }),
        NotifyDegraded: async () => ({}),
        NotifyFailure: async () => ({}),
      },
    );
    expect(callsTo(result, 'NotifyDegraded')).toEqual([]);
    expect(result.output).toMatchObject({ cluster: 'main', status: 'succeeded' });
  });
});
