import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListStateMachinesCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAwsExecution } from '../../../cli/aws-runner.js';
import type { StepEvent } from '../../../cli/executions.js';
import { loadConfig } from '../../../lib/config.js';
import { parseExecution, pgbp, ROOT } from '../pipeline/harness.js';

/**
 * AWS mode: `pgbp backup` and `pgbp restore` start the deployed machine and follow its history.
 * No local service answers Step Functions, so the SFN API is mocked here (and only here).
 */

const PROD = `${ROOT}/config/prod.yml`;
const ACCOUNT = '123456789012';
const machineArn = (machine: string) =>
  `arn:aws:states:eu-west-1:${ACCOUNT}:stateMachine:pg-backup-pipeline-prod-${machine}`;
const executionArn = (machine: string) =>
  `arn:aws:states:eu-west-1:${ACCOUNT}:execution:pg-backup-pipeline-prod-${machine}:run-1`;

const T0 = Date.parse('2026-06-20T02:00:00Z');

/** An event as written in these tests: its type, details, and the event it follows (default: the one before). */
type RawEvent = { readonly type: string; readonly after?: number; readonly at?: number } & Record<
  string,
  unknown
>;

/** A history as Step Functions records it: ids in order, each event pointing at the one before it. */
function history(events: RawEvent[]): HistoryEvent[] {
  return events.map(({ after, at, ...e }, i) => ({
    id: i + 1,
    previousEventId: after ?? i,
    timestamp: new Date(T0 + (at ?? i) * 1000),
    ...e,
  })) as unknown as HistoryEvent[];
}

const entered = (type: string, name: string, input: unknown = {}) => ({
  type: `${type}StateEntered`,
  stateEnteredEventDetails: { name, input: JSON.stringify(input) },
});
const exited = (type: string, name: string, output: unknown = {}) => ({
  type: `${type}StateExited`,
  stateExitedEventDetails: { name, output: JSON.stringify(output) },
});

/** A nightly backup of two databases in which the dump of one fails. */
const failedBackup = history([
  { type: 'ExecutionStarted' },
  entered('Map', 'BackupDatabases', { databases: ['global_remit', 'ledger'] }),
  { type: 'MapStateStarted' },
  { type: 'MapIterationStarted', after: 3 },
  { type: 'MapIterationStarted', after: 3 },
  { ...entered('Task', 'Dump', { database: 'global_remit' }), after: 4, at: 5 },
  { ...entered('Task', 'Dump', { database: 'ledger' }), after: 5, at: 5 },
  { type: 'TaskSucceeded', after: 6, at: 47 },
  { ...exited('Task', 'Dump'), after: 8, at: 47 },
  {
    type: 'TaskFailed',
    after: 7,
    at: 9,
    taskFailedEventDetails: { error: 'DumpFailedError', cause: 'pg_dump: database "ledger" does not exist' },
  },
  { ...exited('Task', 'Dump'), after: 10, at: 9 },
  { type: 'MapIterationSucceeded', after: 9 },
  { type: 'MapIterationSucceeded', after: 11 },
  {
    ...exited('Map', 'BackupDatabases', {
      results: [
        {
          database: 'global_remit',
          status: 'succeeded',
          backupId: 'global_remit-20260620T020005Z',
          sizeBytes: 4096,
        },
        {
          database: 'ledger',
          status: 'failed',
          error: { Error: 'DumpFailedError', Cause: 'no such database' },
        },
      ],
    }),
    after: 13,
    at: 50,
  },
  { ...entered('Fail', 'BackupFailed'), at: 51 },
  {
    type: 'ExecutionFailed',
    at: 51,
    executionFailedEventDetails: { error: 'BackupFailed', cause: 'One or more databases were not backed up' },
  },
]);

const sfn = mockClient(SFNClient);

beforeEach(() => {
  sfn.reset();
  sfn.on(ListStateMachinesCommand).resolves({
    stateMachines: ['backup', 'restore-drill', 'restore'].map((m) => ({
      name: `pg-backup-pipeline-prod-${m}`,
      stateMachineArn: machineArn(m),
      type: 'STANDARD',
      creationDate: new Date(T0),
    })),
  });
});

afterEach(() => sfn.reset());

describe('pgbp backup in AWS mode (config mode: aws)', () => {
  it('starts the stage’s backup machine, prints each state from its history, and exits 1 when it fails', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: executionArn('backup'), startDate: new Date(T0) });
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [...failedBackup].reverse() });
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn: executionArn('backup'),
      status: 'FAILED',
      error: 'BackupFailed',
      cause: 'One or more databases were not backed up',
      startDate: new Date(T0),
      stateMachineArn: machineArn('backup'),
    });

    const run = await pgbp([
      'backup',
      '--config',
      PROD,
      '--database',
      'global_remit',
      '--database',
      'ledger',
    ]);

    expect(run.code).toBe(1);
    expect(sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input).toEqual({
      stateMachineArn: machineArn('backup'),
      input: JSON.stringify({ databases: ['global_remit', 'ledger'] }),
    });
    expect(run.stdout.split('\n')).toEqual([
      'backup: starting the deployed state machine of stage prod',
      '  BackupDatabases started',
      '    Dump [global_remit] started',
      '    Dump [ledger] started',
      '    Dump [global_remit] succeeded in 42.0 s',
      '    Dump [ledger] failed: DumpFailedError: pg_dump: database "ledger" does not exist',
      '  BackupDatabases succeeded in 49.0 s',
      '  BackupFailed',
      '',
      'Backups:',
      '  global_remit  global_remit-20260620T020005Z  4.0 KiB',
      '  ledger  FAILED  DumpFailedError: no such database',
      'Retention:',
      '  did not run',
      expect.stringMatching(
        /^backup FAILED after [\d.]+ s: BackupFailed: One or more databases were not backed up \(arn:aws:states:eu-west-1:123456789012:execution:pg-backup-pipeline-prod-backup:run-1\)$/,
      ),
      '',
    ]);
  });
});

describe('pgbp restore in AWS mode', () => {
  it('starts the restore machine with the request as its input and prints the report', async () => {
    const report = {
      backupId: 'global_remit-20260601T020000Z',
      target: 'global_remit_june',
      recoverySeconds: 754.2,
      checks: [{ name: 'connect', passed: true }],
    };
    sfn
      .on(StartExecutionCommand)
      .resolves({ executionArn: executionArn('restore'), startDate: new Date(T0) });
    sfn.on(GetExecutionHistoryCommand).resolves({
      events: history([
        { type: 'ExecutionStarted' },
        entered('Task', 'Prepare', { database: 'global_remit' }),
        { type: 'LambdaFunctionSucceeded' },
        exited('Task', 'Prepare'),
        { type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: '{}' } },
      ]).reverse(),
    });
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn: executionArn('restore'),
      status: 'SUCCEEDED',
      output: JSON.stringify({ backupId: report.backupId, report }),
      startDate: new Date(T0),
      stateMachineArn: machineArn('restore'),
    });

    const run = await pgbp([
      'restore',
      'latest',
      '--database',
      'global_remit',
      '--target-db',
      'global_remit_june',
      '--before',
      '2026-06-02T00:00:00Z',
      '--schema',
      'core',
      '--config',
      PROD,
      '--json',
    ]);

    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? '')).toEqual({
      database: 'global_remit',
      backup: 'latest',
      targetDatabase: 'global_remit_june',
      schemas: ['core'],
      before: '2026-06-02T00:00:00Z',
    });
    expect(parseExecution(run)).toMatchObject({
      machine: 'restore',
      executionId: executionArn('restore'),
      status: 'SUCCEEDED',
      summary: {
        backupId: report.backupId,
        restored: true,
        target: 'global_remit_june',
        recoverySeconds: 754.2,
        checks: { passed: 1, total: 1 },
      },
    });
  });

  it('uses --state-machine-arn as given, without looking the machine up', async () => {
    const arn = `arn:aws:states:eu-west-1:${ACCOUNT}:stateMachine:custom-restore`;
    sfn.on(StartExecutionCommand).resolves({ executionArn: `${arn}:x`, startDate: new Date(T0) });
    sfn.on(GetExecutionHistoryCommand).resolves({ events: history([{ type: 'ExecutionAborted' }]) });
    sfn.on(DescribeExecutionCommand).resolves({
      status: 'ABORTED',
      startDate: new Date(T0),
      executionArn: `${arn}:x`,
      stateMachineArn: arn,
    });
    const run = await pgbp([
      'restore',
      'latest',
      '--database',
      'global_remit',
      '--target-db',
      'x_restored',
      '--config',
      PROD,
      '--state-machine-arn',
      arn,
      '--json',
    ]);
    expect(run.code).toBe(1);
    expect(sfn.commandCalls(ListStateMachinesCommand)).toEqual([]);
    expect(sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input.stateMachineArn).toBe(arn);
    expect(parseExecution(run).error).toEqual({ name: 'ABORTED', cause: '' });
  });

  it('fails with a clear message when the stage has no such machine deployed', async () => {
    sfn.on(ListStateMachinesCommand).resolves({ stateMachines: [] });
    const run = await pgbp(['drill', '--config', PROD]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^pgbp: ConfigError: no state machine named pg-backup-pipeline-prod-restore-drill /,
    );
    expect(sfn.commandCalls(StartExecutionCommand)).toEqual([]);
  });
});

describe('following an execution', () => {
  it('reads only new history events on each poll until the execution ends', async () => {
    const events = history([
      { type: 'ExecutionStarted' },
      entered('Map', 'DrillDatabases', { databases: ['global_remit'] }),
      { type: 'MapIterationStarted' },
      entered('Task', 'VerifyRestore', { database: 'global_remit' }),
      { type: 'TaskSucceeded' },
      exited('Task', 'VerifyRestore'),
      exited('Map', 'DrillDatabases', { results: [] }),
      { type: 'ExecutionSucceeded' },
    ]);
    // Three polls see the history grow: 2, then 5, then all 8 events (newest first, as asked).
    const seen = [2, 5, 8];
    sfn
      .on(StartExecutionCommand)
      .resolves({ executionArn: executionArn('restore-drill'), startDate: new Date(T0) });
    sfn
      .on(GetExecutionHistoryCommand)
      .callsFake(() => ({ events: events.slice(0, seen.shift() ?? 8).reverse() }));
    sfn.on(DescribeExecutionCommand).resolves({
      status: 'SUCCEEDED',
      output: '{}',
      startDate: new Date(T0),
      executionArn: executionArn('restore-drill'),
      stateMachineArn: machineArn('restore-drill'),
    });
    const steps: StepEvent[] = [];
    const sleeps: number[] = [];

    const result = await runAwsExecution({
      machine: 'restore-drill',
      input: {},
      config: loadConfig(PROD),
      client: new SFNClient({ region: 'eu-west-1' }),
      onStep: (e) => steps.push(e),
      pollMs: 250,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });

    expect(result.status).toBe('SUCCEEDED');
    expect(sleeps).toEqual([250, 250]);
    expect(steps.map((s) => `${s.kind} ${s.state}${s.nested ? ' (nested)' : ''}`)).toEqual([
      'entered DrillDatabases',
      'entered VerifyRestore (nested)',
      'succeeded VerifyRestore (nested)',
      'succeeded DrillDatabases',
    ]);
    expect(sfn.commandCalls(GetExecutionHistoryCommand)[0]?.args[0].input).toMatchObject({
      executionArn: executionArn('restore-drill'),
      reverseOrder: true,
      includeExecutionData: true,
    });
  });

  it('stops following, with the execution named, when it runs longer than allowed', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: executionArn('backup'), startDate: new Date(T0) });
    sfn.on(GetExecutionHistoryCommand).resolves({ events: history([{ type: 'ExecutionStarted' }]) });
    let clock = 0;
    await expect(
      runAwsExecution({
        machine: 'backup',
        input: {},
        config: loadConfig(PROD),
        client: new SFNClient({ region: 'eu-west-1' }),
        maxWaitMs: 60_000,
        pollMs: 30_000,
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
        },
      }),
    ).rejects.toThrow(`${executionArn('backup')} is still running after 1 min`);
  });
});
