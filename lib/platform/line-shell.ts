import { type Child, startChild } from './processes.js';

/**
 * A long-lived child (a small `sh` script) spoken to a line at a time: each request written to
 * its input is answered by one line of its output, in order. Started at the first request and
 * again after it has gone; a request whose child exits before answering gets `undefined`. The
 * WAL pusher's and prefetcher's zstd and cksum run from such a shell rather than from Node,
 * whose every start of a child forks its whole address space.
 */
export class LineShell {
  private readonly command: string;
  private readonly args: readonly string[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly tool: string;
  private child: Child | undefined;
  private buffered = '';
  private readonly waiting: ((line: string | undefined) => void)[] = [];

  constructor(command: string, args: readonly string[], options: { env: NodeJS.ProcessEnv; tool: string }) {
    this.command = command;
    this.args = args;
    this.env = options.env;
    this.tool = options.tool;
  }

  /** Writes `request` (its lines, each ended by a newline) and resolves with the answer line. */
  ask(request: string): Promise<string | undefined> {
    const child = this.started();
    const answer = new Promise<string | undefined>((resolve) => this.waiting.push(resolve));
    child.stdin?.write(request);
    return answer;
  }

  /** Kills the child at once (its pending requests get `undefined`); resolves once it has exited. */
  async kill(): Promise<void> {
    const child = this.child;
    child?.stop('SIGKILL');
    await child?.exited;
  }

  /** Ends the child (its input closed); resolves once it has exited. */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.stdin?.end();
    await child.exited;
  }

  private started(): Child {
    if (this.child?.running()) return this.child;
    const child = startChild(this.command, this.args, {
      tool: this.tool,
      env: this.env,
      stdin: 'pipe',
      stdout: 'pipe',
    });
    this.child = child;
    this.buffered = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.buffered += d;
      for (let i = this.buffered.indexOf('\n'); i >= 0; i = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, i);
        this.buffered = this.buffered.slice(i + 1);
        this.waiting.shift()?.(line);
      }
    });
    void child.exited.then(() => {
      if (this.child === child) this.child = undefined;
      for (const resolve of this.waiting.splice(0)) resolve(undefined);
    });
    return child;
  }
}
