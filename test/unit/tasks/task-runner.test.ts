import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runTask } from '../../../tasks/task-runner.js';
import { sink } from '../../support/sink.js';

function awsError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

describe('a task under a task token', () => {
  it.each(['TaskTimedOut', 'TaskDoesNotExist'])(
    'stops itself when a heartbeat is answered %s (the state gave up or the execution was aborted)',
    async (answer) => {
      const sfn = mockClient(SFNClient);
      try {
        sfn.onAnyCommand().resolves({});
        sfn.on(SendTaskHeartbeatCommand).rejects(awsError(answer, 'Task Timed Out'));
        let stops = 0;
        let stopped: () => void = () => {};
        const whenStopped = new Promise<void>((resolve) => {
          stopped = resolve;
        });
        const stderr = sink();
        const code = await runTask(
          async () => {
            // The work runs until the task is stopped, as a dump would.
            await whenStopped;
            throw awsError('DumpFailedError', 'pg_dump was killed by SIGTERM');
          },
          {
            env: { TASK_TOKEN: 'token-1', PGBP_HEARTBEAT_SECONDS: '0.01' },
            stdout: sink().stream,
            stderr: stderr.stream,
            sfn: () => new SFNClient({}),
            stop: () => {
              stops += 1;
              stopped();
            },
          },
        );
        expect(code).toBe(1);
        expect(stops).toBe(1);
        expect(stderr.text()).toContain(`heartbeat failed: ${answer}`);
        expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
      } finally {
        sfn.restore();
      }
    },
  );

  it('keeps working through a heartbeat that failed for another reason', async () => {
    const sfn = mockClient(SFNClient);
    try {
      let beats = 0;
      sfn.on(SendTaskHeartbeatCommand).callsFake(async () => {
        beats += 1;
        if (beats === 1) throw awsError('ThrottlingException', 'Rate exceeded');
        return {};
      });
      sfn.on(SendTaskSuccessCommand).resolves({});
      let stops = 0;
      const code = await runTask(
        async () => {
          while (beats < 3) await new Promise((r) => setTimeout(r, 5));
          return { ok: true };
        },
        {
          env: { TASK_TOKEN: 'token-2', PGBP_HEARTBEAT_SECONDS: '0.01' },
          stdout: sink().stream,
          stderr: sink().stream,
          sfn: () => new SFNClient({}),
          stop: () => {
            stops += 1;
          },
        },
      );
      expect(code).toBe(0);
      expect(stops).toBe(0);
      expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(1);
    } finally {
      sfn.restore();
    }
  });
});

let sfn: ReturnType<typeof mockClient> | undefined;

afterEach(() => {
  vi.useRealTimers();
  sfn?.restore();
  sfn = undefined;
});

/** Runs a task that stays busy until released, under a token, with the given heartbeat setting. */
function busyTask(heartbeat: string | undefined) {
  sfn = mockClient(SFNClient);
  sfn.onAnyCommand().resolves({});
  const stderr = sink();
  let release: () => void = () => {};
  let started = false;
  const code = runTask(
    () => {
      started = true;
      return new Promise<string>((resolve) => {
        release = () => resolve('done');
      });
    },
    {
      env: {
        TASK_TOKEN: 'token-1',
        ...(heartbeat === undefined ? {} : { PGBP_HEARTBEAT_SECONDS: heartbeat }),
      },
      stdout: sink().stream,
      stderr: stderr.stream,
      sfn: () => new SFNClient({}),
    },
  );
  return { code, stderr, release: () => release(), started: () => started };
}

const heartbeats = () => sfn?.commandCalls(SendTaskHeartbeatCommand).length;

describe('the task heartbeat', () => {
  it.each([
    ['60', 'a number of seconds'],
    ['60s', 'a duration with its unit'],
    ['1m', 'a duration in minutes'],
  ])('beats once a minute for PGBP_HEARTBEAT_SECONDS=%s (%s)', async (value) => {
    vi.useFakeTimers();
    const task = busyTask(value);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(heartbeats()).toBe(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(heartbeats()).toBe(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(heartbeats()).toBe(2);
    task.release();
    expect(await task.code).toBe(0);
  });

  it('beats once a minute when PGBP_HEARTBEAT_SECONDS is not set', async () => {
    vi.useFakeTimers();
    const task = busyTask(undefined);
    await vi.advanceTimersByTimeAsync(61_000);
    expect(heartbeats()).toBe(1);
    task.release();
    expect(await task.code).toBe(0);
  });

  it.each(['soon', '60 seconds', '0', '-5', ''])(
    'refuses PGBP_HEARTBEAT_SECONDS=%j at start, naming the variable, and reports the failure through the token',
    async (value) => {
      vi.useFakeTimers();
      const task = busyTask(value);
      await vi.advanceTimersByTimeAsync(1_000);
      task.release();
      expect(await task.code).toBe(1);
      expect(task.started()).toBe(false);
      expect(heartbeats()).toBe(0);
      expect(task.stderr.text()).toContain(`PGBP_HEARTBEAT_SECONDS: expected`);
      expect(task.stderr.text()).toContain(JSON.stringify(value));
      const failure = sfn?.commandCalls(SendTaskFailureCommand)[0]?.args[0].input;
      expect(failure?.error).toBe('ConfigError');
      expect(failure?.cause).toContain('PGBP_HEARTBEAT_SECONDS');
    },
  );
});
