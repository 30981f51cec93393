import { readFileSync } from 'node:fs';
import { runDump } from '../../../lib/backup/dump.js';
import { type Assertion, parseConfig, type RestorePolicy } from '../../../lib/config.js';
import type { Codec, Manifest } from '../../../lib/domain/manifest.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { resolveConnection } from '../../../lib/postgres/pg-tools.js';
import type { RestoreDeps } from '../../../lib/restore/context.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { createDatabase, listDatabases, uniqueDbName, withClient } from '../../support/pg.js';

/** Shared set-up for the restore tests: the awkward fixture, real dumps of it, restore deps. */

export const awkwardSql = readFileSync(new URL('../../fixtures/awkward.sql', import.meta.url), 'utf8');

const config = parseConfig({ stage: 'local', store: 'file:///unused' }, 'restore tests');

export const connection = resolveConnection(config, process.env, 'postgres');

/**
 * The stage's default restore policy, with overrides; at content depth, so that every round trip
 * of these tests proves each table came back byte for byte.
 */
export function policy(overrides: Partial<RestorePolicy> = {}): RestorePolicy {
  return { ...config.defaults.restore, depth: 'content', ...overrides };
}

/** A new database loaded from the awkward fixture; the caller drops it. */
export async function awkwardDatabase(label: string): Promise<string> {
  const name = uniqueDbName(label);
  await createDatabase(name, awkwardSql);
  return name;
}

let tick = Date.UTC(2026, 5, 20, 2, 0, 0);

/** A real backup of `database`, each at its own second so ids never collide within a store. */
export function dump(
  store: BackupStore,
  database: string,
  options: { codec?: Codec; storageClass?: string; at?: Date } = {},
): Promise<Manifest> {
  tick += 1000;
  const at = options.at ?? new Date(tick);
  return runDump(
    {
      database,
      connection: { ...connection, database },
      store,
      compression: { codec: options.codec ?? 'zstd', level: options.codec === 'gzip' ? 6 : 1, threads: 0 },
      storageClass: options.storageClass ?? 'STANDARD',
    },
    { env: process.env, logger: silentLogger, clock: () => new Date(at) },
  );
}

export function restoreDeps(
  store: BackupStore,
  overrides: { policy?: Partial<RestorePolicy>; assertions?: Assertion[] } & Omit<
    Partial<RestoreDeps>,
    'policy'
  > = {},
): RestoreDeps {
  const { policy: p, ...rest } = overrides;
  return {
    store,
    connection,
    policy: policy(p),
    assertions: [],
    env: process.env,
    logger: silentLogger,
    ...rest,
  };
}

/** Every database whose name starts with one of these prefixes: to show nothing was left behind. */
export async function databasesLike(...prefixes: string[]): Promise<string[]> {
  const found = await Promise.all(prefixes.map((p) => listDatabases(p)));
  return found.flat().sort();
}

/** The schemas of a database, system ones left out. */
export function schemasOf(database: string): Promise<string[]> {
  return withClient(database, async (c) => {
    const r = await c.query<{ nspname: string }>(
      `select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname <> 'information_schema' order by 1`,
    );
    return r.rows.map((row) => row.nspname);
  });
}
