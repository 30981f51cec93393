import * as z from 'zod';
import { slackMessage, slackViewOfNotification } from '../lib/domain/alert-texts.js';
import { ConfigError } from '../lib/domain/errors.js';
import { type SlackWebhook, slackWebhook } from '../lib/notify/slack.js';
import { lambdaHandler, lazyHandler } from '../lib/platform/lambda.js';
import type { Logger } from '../lib/platform/logger.js';
import { getSecret } from '../lib/platform/secrets.js';
import { runtimeConfig, slackSecretId } from '../lib/runtime.js';

const attribute = z.object({ Type: z.string().optional(), Value: z.string().optional() });

/** The SNS → Lambda event: one record per notification (SNS sends one at a time). */
export const snsEvent = z.object({
  Records: z
    .array(
      z.object({
        Sns: z.object({
          Message: z.string(),
          Subject: z.string().nullish(),
          MessageAttributes: z.record(z.string(), attribute).optional(),
          Timestamp: z.string().optional(),
          MessageId: z.string().optional(),
        }),
      }),
    )
    .min(1),
});

export interface SlackForwarderPorts {
  readonly slack: SlackWebhook;
  readonly logger?: Logger;
}

/**
 * Subscribed to the alerts topic: posts each notification to Slack as Block Kit. When Slack
 * stays down it throws, so Lambda's retries and then the dead-letter queue keep the alert.
 */
export function createSlackForwarderHandler(ports: SlackForwarderPorts) {
  return lambdaHandler(
    { name: 'slack-forwarder', event: snsEvent, ...(ports.logger ? { logger: ports.logger } : {}) },
    async (event, { logger }) => {
      const posted: { messageId?: string; attempts: number }[] = [];
      for (const { Sns } of event.Records) {
        const message = slackMessage(
          slackViewOfNotification({
            subject: Sns.Subject ?? null,
            message: Sns.Message,
            ...(Sns.MessageAttributes ? { attributes: Sns.MessageAttributes } : {}),
            ...(Sns.Timestamp ? { timestamp: Sns.Timestamp } : {}),
          }),
        );
        const { attempts } = await ports.slack.post(message);
        logger.info('posted to slack', { messageId: Sns.MessageId, attempts });
        posted.push({ ...(Sns.MessageId ? { messageId: Sns.MessageId } : {}), attempts });
      }
      return { posted };
    },
  );
}

export const handler = lazyHandler(() => {
  const config = runtimeConfig();
  const secretId = slackSecretId(config);
  if (!secretId) {
    throw new ConfigError(`stage ${config.stage}: no Slack webhook secret (alerts.slackWebhookSecretId)`);
  }
  return createSlackForwarderHandler({ slack: slackWebhook({ url: () => getSecret(secretId, 'url') }) });
});
