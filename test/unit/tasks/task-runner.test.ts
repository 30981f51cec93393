import { SendTaskHeartbeatCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
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
