/**
 * Removes secrets from text meant for people: logs, alerts, error messages.
 * Known secret values are replaced wherever they appear; connection strings and
 * password assignments are masked even when the value is not known in advance.
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 1) out = out.split(secret).join('***');
  }
  return out
    .replace(/(postgres(?:ql)?:\/\/[^:/\s@]+:)[^@\s]+@/gi, '$1***@')
    .replace(/(password\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi, '$1***')
    .replace(/(PGPASSWORD\s*=\s*)\S+/g, '$1***')
    .replace(/https:\/\/hooks\.slack\.com\/[^\s"']+/gi, 'https://hooks.slack.com/***');
}
