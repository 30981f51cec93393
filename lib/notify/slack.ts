import { setTimeout as delay } from 'node:timers/promises';
import { type SlackMessage, slackMessage, slackViewOf } from '../domain/alert-texts.js';
import type { Alert } from '../domain/alerts.js';
import { AlertDeliveryError } from '../domain/errors.js';
import { redact } from '../domain/redact.js';
import type { Alerter } from './alerter.js';

export interface SlackWebhookOptions {
  /** The webhook URL, resolved when first needed (it lives in Secrets Manager or SSM). */
  readonly url: () => Promise<string>;
  readonly fetch?: typeof fetch;
  /** Waits between attempts; tests pass one that records and returns at once. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Attempts in all, the first included (default 5). */
  readonly maxAttempts?: number;
  /** First backoff after a 5xx or a network error, doubled each time (default 500 ms). */
  readonly baseDelayMs?: number;
  /** Longest single wait, Retry-After included (default 20 s). */
  readonly maxDelayMs?: number;
  /** Longest total waiting before giving up (default 45 s), so a Lambda fails before its timeout. */
  readonly budgetMs?: number;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
}

export interface SlackWebhook {
  /** Posts the message; retries 429 and 5xx; throws AlertDeliveryError when Slack stays down or refuses. */
  post(message: SlackMessage): Promise<{ readonly attempts: number }>;
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when absent or malformed. */
export function parseRetryAfter(
  header: string | null | undefined,
  now: Date = new Date(),
): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}

/**
 * A Slack incoming webhook. Slack answers 429 with Retry-After when rate limited and 5xx when
 * unwell: both are retried, honouring Retry-After, with bounded exponential backoff. Any other
 * refusal (a 4xx such as `no_service` or `invalid_payload`) will not improve and fails at once.
 * The URL is a secret: it never appears in errors or logs.
 */
export function slackWebhook(options: SlackWebhookOptions): SlackWebhook {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => delay(ms).then(() => undefined));
  const maxAttempts = options.maxAttempts ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 20_000;
  const budgetMs = options.budgetMs ?? 45_000;
  const timeoutMs = options.timeoutMs ?? 10_000;

  return {
    async post(message) {
      const url = await options.url();
      const body = JSON.stringify(message);
      let waited = 0;
      let last = '';
      for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
        let wait: number;
        try {
          const res = await doFetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
            signal: AbortSignal.timeout(timeoutMs),
          });
          const text = (await res.text().catch(() => '')).slice(0, 200);
          if (res.ok) return { attempts: attempt };
          last = `HTTP ${res.status}${text ? ` ${text}` : ''}`;
          const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
          if (res.status !== 429 && res.status < 500) {
            throw new AlertDeliveryError(`Slack refused the alert: ${redact(last, [url])}`);
          }
          wait = retryAfter ?? baseDelayMs * 2 ** (attempt - 1);
        } catch (error) {
          if (error instanceof AlertDeliveryError) throw error;
          last = (error as Error).message;
          const cause = (error as { cause?: { message?: string } }).cause?.message;
          if (cause) last += ` (${cause})`;
          wait = baseDelayMs * 2 ** (attempt - 1);
        }
        wait = Math.min(wait, maxDelayMs);
        if (attempt === maxAttempts || waited + wait > budgetMs) {
          throw new AlertDeliveryError(
            `Slack did not accept the alert after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${redact(last, [url])}`,
          );
        }
        waited += wait;
        await sleep(wait);
      }
      throw new AlertDeliveryError('Slack did not accept the alert');
    },
  };
}

/** Posts our alerts straight to Slack: the embedded default, where there is no SNS topic. */
export function slackAlerter(webhook: SlackWebhook): Alerter {
  return {
    async publish(alert: Alert) {
      await webhook.post(slackMessage(slackViewOf(alert)));
    },
  };
}
