import { type Connection, resolveConnection } from './adapters/pg-tools.js';
import type { Config } from './config.js';

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
      ? await (await import('./adapters/secrets.js')).getSecret(secretId)
      : undefined;
  return resolveConnection(config, env, database, password);
}
