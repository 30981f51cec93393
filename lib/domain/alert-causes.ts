/**
 * The causes an alert carries, made readable and safe: a Step Functions `Cause` (a Lambda's
 * error, an ECS task's stop), with secret-looking fields masked and known secrets redacted.
 */
import { redact } from './redact.js';

const MAX_CAUSE = 2000;
const SECRET_KEY = /pass(word)?|secret|token|webhook|authori[sz]ation|api[-_]?key|credential/i;

/** Masks the values of secret-looking keys (and `{ name: 'PGPASSWORD', value }` pairs) in parsed JSON. */
export function scrubSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrubSecrets);
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    const named = entries.find(([k]) => k.toLowerCase() === 'name')?.[1];
    const secretPair = typeof named === 'string' && SECRET_KEY.test(named);
    return Object.fromEntries(
      entries.map(([k, v]) => {
        if (typeof v === 'string' && (SECRET_KEY.test(k) || (secretPair && k.toLowerCase() === 'value'))) {
          return [k, '***'];
        }
        return [k, scrubSecrets(v)];
      }),
    );
  }
  return value;
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}

interface EcsTaskCause {
  StoppedReason?: string;
  StopCode?: string;
  Containers?: { Name?: string; ExitCode?: number; Reason?: string }[];
}

/**
 * A Step Functions `Cause` made readable: the message of a Lambda error, the stop reason and
 * exit codes of an ECS task, or the text itself; secrets removed, length bounded.
 */
export function describeCause(cause: string | undefined, secrets: readonly string[] = []): string {
  if (!cause) return '';
  let text = cause;
  try {
    const parsed = JSON.parse(cause) as unknown;
    if (typeof parsed === 'string') text = parsed;
    else if (parsed && typeof parsed === 'object') {
      const o = parsed as Record<string, unknown> & EcsTaskCause;
      if (typeof o.errorMessage === 'string') text = o.errorMessage;
      else if (o.StoppedReason !== undefined || Array.isArray(o.Containers)) {
        const containers = (o.Containers ?? []).map(
          (c) =>
            `container ${c.Name ?? '?'} exited with ${c.ExitCode ?? 'no exit code'}${c.Reason ? ` (${c.Reason})` : ''}`,
        );
        text = [`task stopped: ${o.StoppedReason ?? o.StopCode ?? 'no reason given'}`, ...containers].join(
          '; ',
        );
      } else text = JSON.stringify(scrubSecrets(parsed));
    }
  } catch {
    // not JSON: the text as it is
  }
  return truncate(redact(maskJsonSecrets(text), secrets), MAX_CAUSE);
}

/** `"password": "…"` inside text that is JSON-like but was not parsed as a whole. */
function maskJsonSecrets(text: string): string {
  return text.replace(
    /("[^"]*(?:pass(?:word)?|secret|token|webhook|api[-_]?key)[^"]*"\s*:\s*)"(?:[^"\\]|\\.)*"/gi,
    '$1"***"',
  );
}
