import type { Config } from '../config.js';
import type { Connection } from '../postgres/pg-tools.js';
import { startScratchServer } from '../postgres/scratch-server.js';
import type { RestoreRequest } from './request.js';

/**
 * The server a restore goes to. A manual restore goes to the source server (its target database
 * is a new one there, by request). A drill (verify) never loads the source unless the config says
 * `drill.target: source`: it restores into a scratch server of its own, started for it and
 * removed afterwards, or into the configured drill server.
 */
export async function withRestoreServer<T>(
  request: RestoreRequest,
  config: Pick<Config, 'drill'>,
  source: () => Promise<Connection>,
  work: (connection: Connection, where: 'source' | 'scratch' | 'server') => Promise<T>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly parent?: string } = {},
): Promise<T> {
  if (request.mode !== 'verify' || config.drill.target === 'source') return work(await source(), 'source');
  const configured = config.drill.server;
  if (config.drill.target === 'server' && configured) {
    const password = configured.passwordSecretId
      ? await (await import('../platform/secrets.js')).getSecret(configured.passwordSecretId)
      : undefined;
    return work(
      {
        host: configured.host,
        port: configured.port,
        user: configured.user,
        database: 'postgres',
        ...(password !== undefined ? { password } : {}),
        ...(configured.sslmode !== undefined ? { sslmode: configured.sslmode } : {}),
      },
      'server',
    );
  }
  const server = await startScratchServer({
    ...(options.env ? { env: options.env } : {}),
    ...(options.parent ? { parent: options.parent } : {}),
  });
  try {
    return await work(server.connection, 'scratch');
  } finally {
    await server.stop();
  }
}
