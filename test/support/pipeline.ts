import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { CreateTopicCommand, SubscribeCommand } from '@aws-sdk/client-sns';
import { stringify } from 'yaml';
import type { Alert } from '../../lib/domain/alerts.js';
import type { Alerter } from '../../lib/notify/alerter.js';
import { snsClient } from '../../lib/platform/aws-clients/sns.js';

/** An alerter port that keeps what it was given, as a person's inbox would. */
export function inboxAlerter(): Alerter & { readonly received: Alert[] } {
  const received: Alert[] = [];
  return {
    received,
    async publish(alert) {
      received.push(alert);
    },
  };
}

/** Runs `fn` over `items`, `limit` at a time. */
export async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

export interface RecordedRequest {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

export interface TestServer {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Resolves once `count` requests arrived (or rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  close(): Promise<void>;
}

/** A local HTTP server on 127.0.0.1 that records requests and answers with `respond`. */
export async function startServer(
  respond: (req: RecordedRequest, index: number, res: ServerResponse) => void = (_r, _i, res) =>
    res.end('ok'),
): Promise<TestServer> {
  const requests: RecordedRequest[] = [];
  const waiters: (() => void)[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => {
      const recorded = { path: req.url ?? '/', headers: req.headers, body };
      requests.push(recorded);
      respond(recorded, requests.length - 1, res);
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`expected ${count} requests, got ${requests.length}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return requests.slice(0, count);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A fresh SNS topic on the moto server. */
export async function createTopic(name: string): Promise<string> {
  const out = await snsClient().send(
    new CreateTopicCommand({ Name: `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}` }),
  );
  return out.TopicArn ?? '';
}

/** Subscribes an HTTP endpoint to a topic, with an optional filter policy on message attributes. */
export async function subscribeHttp(
  topicArn: string,
  endpoint: string,
  filterPolicy?: Record<string, unknown>,
): Promise<void> {
  await snsClient().send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: 'http',
      Endpoint: endpoint,
      ...(filterPolicy ? { Attributes: { FilterPolicy: JSON.stringify(filterPolicy) } } : {}),
    }),
  );
}

/** Writes a stage config file and returns its path. */
export async function writeConfigFile(dir: string, config: Record<string, unknown>): Promise<string> {
  const file = join(dir, 'stage.yml');
  await writeFile(file, stringify(config));
  return file;
}

/** The error a promise rejects with; fails the test when it resolves instead. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}
