import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { onPath } from './pg-tools.js';

/**
 * Where the PostgreSQL server programs are (pg_ctl, postgres, pg_verifybackup): on the PATH,
 * else in `pg_config --bindir` (Debian keeps them out of the PATH, in
 * /usr/lib/postgresql/<major>/bin).
 */
const bindirs = new Map<string, string | undefined>();

export function serverTool(tool: string, env: NodeJS.ProcessEnv): string {
  if (onPath(tool, env)) return tool;
  const path = env.PATH ?? '';
  if (!bindirs.has(path)) {
    try {
      bindirs.set(path, execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', env }).trim());
    } catch {
      bindirs.set(path, undefined);
    }
  }
  const dir = bindirs.get(path);
  if (!dir) {
    throw new Error(
      `${tool} is not on the PATH and pg_config cannot say where the server programs are: install the PostgreSQL server package of the cluster's major version`,
    );
  }
  return join(dir, tool);
}
