import type { Config } from '../config.js';
import { type Connection, resolveConnection } from './pg-tools.js';

/**
 * The connection for a database: libpq variables over the config; the password from
 * PGPASSWORD, else from the configured secret (Secrets Manager on AWS).
 */
export async function connectionFor(
  config: Config,
  env: NodeJS.ProcessEnv,
  database: string,
): Promise<Connection> {
  const secretId = config.connection.passwordSecretId;
  // The Secrets Manager client loads only when a secret is read.
  const password =
    env.PGPASSWORD === undefined && secretId
      ? await (await import('../platform/secrets.js')).getSecret(secretId)
      : undefined;
  return resolveConnection(config, env, database, password);
}
