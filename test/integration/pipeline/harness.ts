import { Writable } from 'node:stream';
import { main } from '../../../cli/main.js';
import { projectRoot } from '../../../lib/state-machines.js';
import { createTopic, startServer, subscribeHttp, type TestServer } from '../../support/pipeline.js';

/**
 * For the acceptance tests of the pipeline: `pgbp` run in-process (its task processes are real
 * child processes all the same), and an SNS topic on moto with an HTTP subscriber standing for
 * the on-call inbox.
 */

export const ROOT = projectRoot();

export interface PgbpRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function sink(append: (text: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      append(chunk.toString());
      done();
    },
  });
}

/** Runs the `pgbp` command in this process, as the CLI would run it. */
export async function pgbp(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<PgbpRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    env,
    cwd: ROOT,
    stdout: sink((t) => {
      stdout += t;
    }),
    stderr: sink((t) => {
      stderr += t;
    }),
  });
  return { code, stdout, stderr };
}

/** What `--json` prints for an execution. */
export interface ExecutionJson<S> {
  readonly machine: string;
  readonly executionId: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly error: { readonly name: string; readonly cause: string } | null;
  readonly summary: S;
}

export function parseExecution<S>(run: PgbpRun): ExecutionJson<S> {
  return JSON.parse(run.stdout) as ExecutionJson<S>;
}

export interface Notification {
  readonly Type: string;
  readonly Subject: string;
  readonly Message: string;
}

/** An alerts topic on moto whose HTTP subscriber keeps what it receives. */
export interface Inbox {
  readonly topicArn: string;
  readonly server: TestServer;
  /** The alerts received so far (subscription handshakes left out). */
  notifications(): Notification[];
  /** Resolves with the alerts once `count` arrived; rejects after `timeoutMs`. */
  received(count: number, timeoutMs?: number): Promise<Notification[]>;
  close(): Promise<void>;
}

export async function alertInbox(label: string): Promise<Inbox> {
  const topicArn = await createTopic(label);
  const server = await startServer();
  await subscribeHttp(topicArn, `${server.url}/oncall`);
  const notifications = () =>
    server.requests.map((r) => JSON.parse(r.body) as Notification).filter((n) => n.Type === 'Notification');
  return {
    topicArn,
    server,
    notifications,
    async received(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (notifications().length < count) {
        if (Date.now() > deadline) {
          throw new Error(
            `expected ${count} alerts, got ${JSON.stringify(notifications().map((n) => n.Subject))}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return notifications();
    },
    close: () => server.close(),
  };
}
