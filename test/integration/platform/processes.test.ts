import { describe, expect, it } from 'vitest';
import {
  ChildFailedError,
  describeExit,
  exitedCleanly,
  runningChildren,
  StderrLog,
  startChild,
  stopAllChildren,
} from '../../../lib/platform/processes.js';
import { groupMembers, waitUntil } from '../../support/processes.js';

function sh(script: string, extra: { secrets?: string[]; graceMs?: number } = {}) {
  return startChild('sh', ['-c', script], { tool: 'the tool', env: process.env, ...extra });
}

describe('a child process', () => {
  it('that fails is named, with the first error line and the last lines of what it said', async () => {
    const child = sh(
      'echo "pg_restore: warning: one"; echo "pg_restore: while PROCESSING TOC:"; echo "from TOC entry 215"; ' +
        'echo "pg_restore: error: could not execute query: ERROR:  relation \\"a.t\\" does not exist"; ' +
        'for i in $(seq 1 30); do echo "    column_$i,"; done; echo "   FROM a.t;" >&2; exit 1',
    );
    const exit = await child.exited;
    expect(exitedCleanly(exit)).toBe(false);
    const message = new ChildFailedError(exit).message;
    expect(message).toMatch(/^the tool exited with code 1: /);
    // stdout is not stderr: only the last line went to stderr.
    expect(message).toBe('the tool exited with code 1: FROM a.t;');

    const log = new StderrLog();
    log.push('pg_restore: warning: one\npg_restore: while PROCESSING TOC:\nfrom TOC entry 215\n');
    log.push(
      'pg_restore: error: could not execute query: ERROR:  relation "a.t" does not exist\nLINE 5: ...\n',
    );
    for (let i = 1; i <= 30; i += 1) log.push(`    column_${i},\n`);
    log.push('   FROM a.t;');
    log.end();
    const summary = log.summary();
    expect(summary).toContain('ERROR:  relation "a.t" does not exist');
    expect(summary).toContain('pg_restore: warning: one');
    expect(summary).toMatch(/column_30,; FROM a\.t;$/);
    expect(summary).toContain('…');
    expect(summary).not.toContain('column_10,');
  });

  it('keeps everything it said on stderr when that is short, secrets removed', async () => {
    const child = sh('echo "connecting with s3cret-value" >&2; echo "gave up" >&2; exit 3', {
      secrets: ['s3cret-value'],
    });
    const exit = await child.exited;
    expect(describeExit(exit)).toBe('the tool exited with code 3: connecting with ***; gave up');
  });

  it('that cannot start says so and names the tool', async () => {
    const child = startChild('no-such-tool-here', [], { env: process.env });
    const exit = await child.exited;
    expect(describeExit(exit)).toMatch(/^no-such-tool-here could not start: .*ENOENT/);
  });

  it('when stopped, takes everything it started with it (its process group)', async () => {
    const child = sh('sleep 300 & sleep 300 & echo started >&2; wait', {});
    const pid = child.pid as number;
    await waitUntil(() => groupMembers(pid).length >= 3, 'the child has started its two sleeps');
    child.stop();
    const exit = await child.exited;
    expect(exit.signal).toBe('SIGTERM');
    expect(runningChildren()).toBe(0);
    await waitUntil(() => groupMembers(pid).length === 0, 'the sleeps it started have gone too');
  });

  it('that ignores SIGTERM gets SIGKILL once its grace period is over', async () => {
    const child = sh('trap "" TERM; echo ready >&2; while :; do sleep 0.05; done', { graceMs: 200 });
    await waitUntil(() => groupMembers(child.pid as number).length >= 2, 'the child has started its loop');
    await stopAllChildren();
    const exit = await child.exited;
    expect(exit.signal).toBe('SIGKILL');
    await waitUntil(() => groupMembers(child.pid as number).length === 0, 'its whole group has gone');
  });
});
