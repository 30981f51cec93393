import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand } from '@aws-sdk/client-ssm';
import { afterEach, describe, expect, it } from 'vitest';
import { createSlackForwarderHandler, handler } from '../../../functions/slack-forwarder.js';
import { alertSubject, alertText } from '../../../lib/domain/alert-texts.js';
import { type Alert, failureAlert } from '../../../lib/domain/alerts.js';
import { AlertDeliveryError } from '../../../lib/domain/errors.js';
import { slackWebhook } from '../../../lib/notify/slack.js';
import { secretsClient, ssmClient } from '../../../lib/platform/aws-clients/secrets.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { getSecret } from '../../../lib/platform/secrets.js';
import { withTempDir } from '../../support/manifests.js';
import { rejection, startServer, type TestServer, writeConfigFile } from '../../support/pipeline.js';

const ALERT: Alert = failureAlert(
  {
    database: 'global_remit',
    backupId: 'global_remit-20260620T020000Z',
    error: {
      Error: 'SizeOutOfRangeError',
      Cause: 'the dump is 0 B, at or below 2.0 KiB: empty or near-empty',
    },
  },
  new Date('2026-06-20T02:31:00Z'),
);

/** What SNS hands the forwarder for one of our alerts. */
function snsEvent(alert: Alert) {
  return {
    Records: [
      {
        EventSource: 'aws:sns',
        Sns: {
          Type: 'Notification',
          MessageId: 'f0e1d2c3',
          TopicArn: 'arn:aws:sns:eu-west-1:123456789012:alerts',
          Subject: alertSubject(alert),
          Message: alertText(alert),
          Timestamp: '2026-06-20T02:31:01.000Z',
          MessageAttributes: {
            severity: { Type: 'String', Value: alert.severity },
            kind: { Type: 'String', Value: alert.kind },
            database: { Type: 'String', Value: alert.database },
          },
        },
      },
    ],
  };
}

/** The webhook URL lives in Secrets Manager, as deployed. */
async function webhookSecret(server: TestServer): Promise<string> {
  const name = `pgbp/slack-${Math.random().toString(36).slice(2)}`;
  await secretsClient().send(
    new CreateSecretCommand({
      Name: name,
      SecretString: JSON.stringify({ url: `${server.url}/services/T0/B0/s3cr3t` }),
    }),
  );
  return name;
}

function forwarder(secretId: string, waits: number[]) {
  return createSlackForwarderHandler({
    slack: slackWebhook({
      url: () => getSecret(secretId, 'url'),
      sleep: async (ms) => {
        waits.push(ms);
      },
    }),
    logger: silentLogger,
  });
}

describe('slack-forwarder against a local Slack', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    delete process.env.PGBP_CONFIG;
  });

  it('waits as long as Retry-After says after a 429, then posts the Block Kit message', async () => {
    server = await startServer((_req, i, res) => {
      if (i === 0) {
        res.writeHead(429, { 'retry-after': '3' });
        res.end('rate_limited');
      } else res.end('ok');
    });
    const waits: number[] = [];
    const result = await forwarder(await webhookSecret(server), waits)(snsEvent(ALERT));
    expect(result).toEqual({ posted: [{ messageId: 'f0e1d2c3', attempts: 2 }] });
    expect(waits).toEqual([3000]);
    expect(server.requests.map((r) => r.path)).toEqual(['/services/T0/B0/s3cr3t', '/services/T0/B0/s3cr3t']);
    const message = JSON.parse(server.requests[1]?.body ?? '{}') as { text: string; blocks: unknown[] };
    expect(message.text).toBe('[CRITICAL] Backup size anomaly: global_remit (SizeOutOfRangeError)');
    expect(message.blocks[0]).toEqual({
      type: 'header',
      text: {
        type: 'plain_text',
        text: ':red_circle: [CRITICAL] Backup size anomaly: global_remit (SizeOutOfRangeError)',
        emoji: true,
      },
    });
    expect(JSON.stringify(message.blocks[1])).toContain('*Database*\\nglobal_remit');
    expect(JSON.stringify(message.blocks[2])).toContain('empty or near-empty');
  });

  it('throws when Slack stays down, after a bounded backoff, so Lambda retries and dead-letters the alert', async () => {
    server = await startServer((_req, _i, res) => {
      res.writeHead(503);
      res.end('service unavailable');
    });
    const waits: number[] = [];
    const forward = forwarder(await webhookSecret(server), waits);
    const failure = await rejection(forward(snsEvent(ALERT)));
    expect(failure).toBeInstanceOf(AlertDeliveryError);
    expect(failure.name).toBe('AlertDeliveryError');
    expect(failure.message).toBe(
      'Slack did not accept the alert after 5 attempts: HTTP 503 service unavailable',
    );
    expect(server.requests).toHaveLength(5);
    expect(waits).toEqual([500, 1000, 2000, 4000]);
  });

  it('fails at once when Slack refuses the webhook, since retrying cannot help', async () => {
    server = await startServer((_req, _i, res) => {
      res.writeHead(404);
      res.end('no_service');
    });
    const waits: number[] = [];
    const forward = forwarder(await webhookSecret(server), waits);
    const failure = await rejection(forward(snsEvent(ALERT)));
    expect(failure).toBeInstanceOf(AlertDeliveryError);
    expect(failure.message).toBe('Slack refused the alert: HTTP 404 no_service');
    expect(failure.message).not.toContain('s3cr3t');
    expect(server.requests).toHaveLength(1);
    expect(waits).toEqual([]);
  });

  it('reads the webhook from SSM Parameter Store when deployed with an ssm: secret', async () => {
    server = await startServer();
    const name = `/pgbp/slack-${Math.random().toString(36).slice(2)}`;
    await ssmClient().send(
      new PutParameterCommand({
        Name: name,
        Type: 'SecureString',
        Value: `${server.url}/services/T1/B1/other`,
      }),
    );
    await withTempDir(async (dir) => {
      process.env.PGBP_CONFIG = await writeConfigFile(dir, {
        stage: 'prod',
        mode: 'aws',
        store: 's3://pgbp-unused',
        alerts: { slackWebhookSecretId: `ssm:${name}` },
      });
      await handler(snsEvent(ALERT));
    });
    expect(server.requests.map((r) => r.path)).toEqual(['/services/T1/B1/other']);
  });
});
