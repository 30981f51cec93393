/**
 * The texts of an alert: its title, the SNS subject, the body for e-mail and the console, and
 * the Slack message (of one of our alerts, or of any notification on the topic). The model and
 * its constructors are in alerts.ts.
 */
import { truncate } from './alert-causes.js';
import { type Alert, TITLES } from './alerts.js';
import { redact } from './redact.js';

/** SNS: a subject is under 100 characters, without line breaks or control characters. */
export const MAX_SUBJECT = 99;

/** The one-line title: `[CRITICAL] Backup failed: db (DumpFailedError)`. */
export function alertTitle(alert: Alert): string {
  const parts = [`[${alert.severity.toUpperCase()}] ${TITLES[alert.kind]}`];
  if (alert.database) parts.push(`: ${alert.database}`);
  if (alert.error) parts.push(` (${alert.error.name})`);
  return parts.join('');
}

/** An SNS subject: printable ASCII, one line, under 100 characters. */
export function alertSubject(alert: Alert): string {
  const ascii = alertTitle(alert)
    .replace(/[\r\n\t]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .trim();
  return truncate(ascii, MAX_SUBJECT);
}

/** The readable body of an alert: for e-mail, the console, and Slack's message text. */
export function alertText(alert: Alert): string {
  const lines = [alertTitle(alert), ''];
  lines.push(`Severity:  ${alert.severity}`);
  lines.push(`Kind:      ${alert.kind}`);
  if (alert.database) lines.push(`Database:  ${alert.database}`);
  if (alert.backupId) lines.push(`Backup:    ${alert.backupId}`);
  if (alert.execution) lines.push(`Execution: ${alert.execution}`);
  lines.push(`When:      ${alert.at}`);
  lines.push('', 'What happened:', alert.summary);
  if (alert.error) {
    lines.push('', `Error: ${alert.error.name}`);
    if (alert.error.cause) lines.push(`Cause: ${alert.error.cause}`);
  }
  lines.push('', 'What to do next:', ...alert.nextSteps.map((s) => `- ${s}`));
  return redact(lines.join('\n'));
}

/** What a Slack message is made from: an alert of ours, or any notification on the topic. */
export interface SlackView {
  readonly title: string;
  readonly severity?: string;
  readonly kind?: string;
  readonly database?: string;
  readonly backupId?: string;
  readonly body: string;
  readonly at?: string;
}

export interface SlackMessage {
  readonly text: string;
  readonly blocks: readonly Record<string, unknown>[];
}

const EMOJI: Record<string, string> = {
  critical: ':red_circle:',
  warning: ':warning:',
  info: ':information_source:',
};

function mrkdwnEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A Block Kit message within Slack's limits (header 150, section text 3,000, field 2,000 characters). */
export function slackMessage(view: SlackView): SlackMessage {
  const title = redact(view.title);
  const emoji = (view.severity && EMOJI[view.severity]) ?? ':bell:';
  const fields = (
    [
      ['Severity', view.severity],
      ['Kind', view.kind],
      ['Database', view.database],
      ['Backup', view.backupId],
    ] as const
  )
    .filter(([, v]) => v)
    .map(([k, v]) => ({ type: 'mrkdwn', text: truncate(`*${k}*\n${mrkdwnEscape(redact(v ?? ''))}`, 2000) }));
  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: truncate(`${emoji} ${title}`, 150), emoji: true } },
  ];
  if (fields.length > 0) blocks.push({ type: 'section', fields });
  const body = redact(view.body).trim();
  if (body) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `\`\`\`${truncate(mrkdwnEscape(body), 2980)}\`\`\`` },
    });
  }
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: `pg-backup-pipeline${view.at ? ` · ${view.at}` : ''}` }],
  });
  return { text: truncate(title, 3000), blocks };
}

/** The Slack view of one of our alerts. */
export function slackViewOf(alert: Alert): SlackView {
  return {
    title: alertTitle(alert),
    severity: alert.severity,
    kind: alert.kind,
    ...(alert.database ? { database: alert.database } : {}),
    ...(alert.backupId ? { backupId: alert.backupId } : {}),
    body: alertText(alert),
    at: alert.at,
  };
}

/** An SNS notification as the forwarder receives it (any publisher's, not only ours). */
export interface TopicNotification {
  readonly subject?: string | null;
  readonly message: string;
  readonly attributes?: Readonly<Record<string, { readonly Value?: string } | undefined>>;
  readonly timestamp?: string;
}

/** The Slack view of a notification: subject as title, attributes as fields, the message as body. */
export function slackViewOfNotification(n: TopicNotification): SlackView {
  const firstLine = n.message.split('\n', 1)[0]?.trim() ?? '';
  const title = n.subject?.trim() || truncate(firstLine || 'Notification', 140);
  // Our bodies start with the title line; Slack shows it as the header already.
  const body = n.message.startsWith(`${title}\n`)
    ? n.message.slice(title.length).replace(/^\n+/, '')
    : n.message;
  const attr = (name: string) => n.attributes?.[name]?.Value;
  const severity = attr('severity');
  const kind = attr('kind');
  const database = attr('database');
  const backupId = attr('backupId');
  return {
    title,
    body,
    ...(severity ? { severity } : {}),
    ...(kind ? { kind } : {}),
    ...(database ? { database } : {}),
    ...(backupId ? { backupId } : {}),
    ...(n.timestamp ? { at: n.timestamp } : {}),
  };
}
