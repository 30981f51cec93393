import { VersionMismatchError } from '../domain/errors.js';

/**
 * PostgreSQL versions, read one way wherever they come from (a client tool's `--version`, the
 * server's settings, a manifest). The major is what compatibility turns on: two numbers before
 * 10 (9.6), one from 10 on (10, 15, 17); a beta or release candidate has its release's major.
 */
export interface Version {
  /** As printed: `15.20`, `9.6.24`, `17beta1`. */
  readonly text: string;
  readonly major: number;
}

const LEADING = /^(\d+)(?:\.(\d+))?/;

/** `15.20` → 15, `9.6.24` → 9.6, `17beta1` → 17, `16.1 (Debian 16.1-1)` → 16; undefined when it is no version. */
export function parseVersion(text: string): Version | undefined {
  const token = text.trim().split(/\s+/)[0] ?? '';
  const m = LEADING.exec(token);
  if (!m) return undefined;
  const first = Number(m[1]);
  return { text: token, major: first < 10 ? Number(`${first}.${m[2] ?? 0}`) : first };
}

/** `pg_dump (PostgreSQL) 15.20 (Debian …)` → { text: '15.20', major: 15 }. */
export function parseToolVersion(output: string): Version | undefined {
  const m = /\(PostgreSQL\)\s+(\S+)/.exec(output);
  return m?.[1] ? parseVersion(m[1]) : undefined;
}

/**
 * The server's version from its `server_version` and `server_version_num` settings: the major
 * from the number (90624 → 9.6, 150020 → 15), which no vendor suffix can disturb.
 */
export function serverVersionOf(setting: string, num: string | number): Version {
  const n = Number(num);
  const text = setting.trim().split(/\s+/)[0] ?? '';
  if (!Number.isInteger(n) || n <= 0) {
    const parsed = parseVersion(text);
    if (!parsed) throw new RangeError(`unreadable server version ${JSON.stringify(setting)}`);
    return parsed;
  }
  const first = Math.floor(n / 10000);
  return { text, major: first < 10 ? Number(`${first}.${Math.floor(n / 100) % 100}`) : first };
}

/** Refuses when a client tool is older than the server: its output would miss what it does not know. */
export function requireToolAtLeastServer(tool: string, toolVersion: Version, server: Version): void {
  if (toolVersion.major < server.major) {
    throw new VersionMismatchError(
      `${tool} ${toolVersion.text} is older than the server's PostgreSQL ${server.text}; install client tools of major version ${server.major} or newer`,
    );
  }
}
