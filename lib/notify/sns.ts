import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { alertSubject, alertText } from '../domain/alert-texts.js';
import type { Alert } from '../domain/alerts.js';
import { AlertDeliveryError } from '../domain/errors.js';
import { snsClient } from '../platform/aws-clients/sns.js';
import type { Alerter } from './alerter.js';

/**
 * The SNS message attributes of an alert. `severity` and `kind` let subscribers filter
 * (e-mail on critical only, say); database and backup id come along when known.
 */
export function alertAttributes(alert: Alert): Record<string, { DataType: 'String'; StringValue: string }> {
  const attributes: Record<string, { DataType: 'String'; StringValue: string }> = {
    severity: { DataType: 'String', StringValue: alert.severity },
    kind: { DataType: 'String', StringValue: alert.kind },
  };
  if (alert.database) attributes.database = { DataType: 'String', StringValue: alert.database };
  if (alert.backupId) attributes.backupId = { DataType: 'String', StringValue: alert.backupId };
  return attributes;
}

/** Publishes alerts to an SNS topic: a short subject, a readable body, filterable attributes. */
export function snsAlerter(
  topicArn: string,
  client: SNSClient = snsClient(),
): Alerter & {
  publishWithId(alert: Alert): Promise<string>;
} {
  const publishWithId = async (alert: Alert): Promise<string> => {
    try {
      const out = await client.send(
        new PublishCommand({
          TopicArn: topicArn,
          Subject: alertSubject(alert),
          Message: alertText(alert),
          MessageAttributes: alertAttributes(alert),
        }),
      );
      return out.MessageId ?? '';
    } catch (error) {
      throw new AlertDeliveryError(
        `publishing the ${alert.kind} alert to ${topicArn} failed: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  };
  return {
    publishWithId,
    async publish(alert) {
      await publishWithId(alert);
    },
  };
}
