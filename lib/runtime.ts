import { type Config, loadDeployedConfig } from './config.js';
import { ConfigError } from './domain/errors.js';
import { type Alerter, consoleAlerter, fanOutAlerter } from './notify/alerter.js';
import { slackAlerter, slackWebhook } from './notify/slack.js';
import { snsAlerter } from './notify/sns.js';
import { type Clock, systemClock } from './platform/clock.js';
import { processEnv } from './platform/environment.js';
import { getSecret } from './platform/secrets.js';
import type { BackupStore } from './storage/store.js';
import { openRoleStores, type RoleStore } from './storage/store-roles.js';

/** The ports every pipeline handler takes; tests pass their own, `handler` exports wire these. */
export interface PipelinePorts {
  readonly config: Config;
  /** The primary store (the only one, with one). */
  readonly store: BackupStore;
  /** The secondary store, where the config names one. */
  readonly secondary?: BackupStore;
  readonly alerter: Alerter;
  readonly clock: Clock;
}

/** The SNS topic for alerts: the stack's (PGBP_ALERTS_TOPIC_ARN, set by serverless.yml) over the config's. */
export function alertsTopicArn(config: Config, env: NodeJS.ProcessEnv = processEnv()): string | undefined {
  return env.PGBP_ALERTS_TOPIC_ARN || config.alerts.snsTopicArn;
}

/** The Slack webhook secret: PGBP_SLACK_WEBHOOK_SECRET_ID over the config's. A JSON secret yields its `url`. */
export function slackSecretId(config: Config, env: NodeJS.ProcessEnv = processEnv()): string | undefined {
  return env.PGBP_SLACK_WEBHOOK_SECRET_ID || config.alerts.slackWebhookSecretId;
}

/**
 * Where alerts go. With an SNS topic: SNS (Slack then hangs off the topic through the
 * forwarder). Without one: a Slack webhook when configured. The console when enabled, and
 * always when nothing else is, so an alert is never dropped.
 */
export function createAlerter(
  config: Config,
  env: NodeJS.ProcessEnv = processEnv(),
  /** Where console alerts go (stderr by default): the CLI passes its own stream. */
  write?: (text: string) => void,
): Alerter {
  const targets: Alerter[] = [];
  const topic = alertsTopicArn(config, env);
  const slack = slackSecretId(config, env);
  if (topic) targets.push(snsAlerter(topic));
  else if (config.mode === 'aws') {
    throw new ConfigError(
      `stage ${config.stage} runs on AWS but has no alerts topic: set PGBP_ALERTS_TOPIC_ARN or alerts.snsTopicArn`,
    );
  } else if (slack) targets.push(slackAlerter(slackWebhook({ url: () => getSecret(slack, 'url') })));
  if (config.alerts.console || targets.length === 0) targets.push(consoleAlerter(write));
  return targets.length === 1 ? (targets[0] as Alerter) : fanOutAlerter(targets);
}

let config: Config | undefined;
let ports: PipelinePorts | undefined;

/** The deployed config, loaded and validated once per process. */
export function runtimeConfig(env: NodeJS.ProcessEnv = processEnv()): Config {
  config ??= loadDeployedConfig(env);
  return config;
}

/** The real ports, built once per process from the deployed config. */
export async function runtimePorts(env: NodeJS.ProcessEnv = processEnv()): Promise<PipelinePorts> {
  if (!ports) {
    const c = runtimeConfig(env);
    const [primary, secondary] = await openRoleStores(c);
    ports = {
      config: c,
      store: (primary as RoleStore).store,
      ...(secondary ? { secondary: secondary.store } : {}),
      alerter: createAlerter(c, env),
      clock: systemClock,
    };
  }
  return ports;
}
