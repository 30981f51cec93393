import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type pg from 'pg';
import type { Config } from '../config.js';
import { capture, defaultSpawn, type Spawn } from '../platform/processes.js';
import { parseToolVersion, serverVersionOf, type Version } from './versions.js';

const found = new Map<string, boolean>();
/** Whether `command` is an executable on the PATH of `env` (looked up once per PATH). */
export function onPath(command: string, env: NodeJS.ProcessEnv): boolean {
  const path = env.PATH ?? '';
  const memo = `${command}\0${path}`;
  let present = found.get(memo);
  if (present === undefined) {
    present = path.split(delimiter).some((dir) => {
      try {
        accessSync(join(dir || '.', command), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    found.set(memo, present);
  }
  return present;
}

/** Where and as whom to connect, after libpq variables and config are combined. Never printed whole. */
export interface Connection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly password?: string;
  readonly sslmode?: string;
}

/**
 * libpq conventions: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE win over the config,
 * which wins over libpq's own defaults.
 */
export function resolveConnection(
  config: Pick<Config, 'connection'>,
  env: NodeJS.ProcessEnv,
  database: string,
  password?: string,
): Connection {
  const c = config.connection;
  const sslmode = env.PGSSLMODE ?? c.sslmode;
  const pw = env.PGPASSWORD ?? password;
  return {
    host: env.PGHOST ?? c.host ?? '127.0.0.1',
    port: Number(env.PGPORT ?? c.port ?? 5432),
    user: env.PGUSER ?? c.user ?? 'postgres',
    database,
    ...(pw !== undefined ? { password: pw } : {}),
    ...(sslmode !== undefined ? { sslmode } : {}),
  };
}

/** Where a connection goes, for messages: never the password. */
export function describeConnection(c: Connection): string {
  return `${c.user}@${c.host}:${c.port}/${c.database}`;
}

/** The environment for a client tool: the password travels in PGPASSWORD, never in argv. */
export function libpqEnv(c: Connection, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGUSER: c.user,
    PGDATABASE: c.database,
    PGCONNECT_TIMEOUT: base.PGCONNECT_TIMEOUT ?? '10',
  };
  if (c.password !== undefined) env.PGPASSWORD = c.password;
  else delete env.PGPASSWORD;
  if (c.sslmode !== undefined) env.PGSSLMODE = c.sslmode;
  return env;
}

/**
 * A `pg` client for the connection (libpq variables are not consulted: everything is explicit).
 * The driver loads on first use, so that a dump can start its processes before it has loaded.
 */
export async function pgClient(c: Connection, database = c.database): Promise<pg.Client> {
  const { default: driver } = await import('pg');
  return new driver.Client({
    host: c.host,
    port: c.port,
    user: c.user,
    database,
    password: c.password ?? '',
    connectionTimeoutMillis: 10_000,
    ...(c.sslmode && c.sslmode !== 'disable' && c.sslmode !== 'allow' && c.sslmode !== 'prefer'
      ? { ssl: { rejectUnauthorized: c.sslmode === 'verify-full' || c.sslmode === 'verify-ca' } }
      : {}),
  });
}

/** Runs `<tool> --version`. */
export async function toolVersion(
  tool: string,
  env: NodeJS.ProcessEnv,
  spawn: Spawn = defaultSpawn,
): Promise<Version> {
  const { code, stdout, stderr } = await capture(spawn, tool, ['--version'], env);
  const version = parseToolVersion(stdout);
  if (code !== 0 || !version) {
    throw new Error(`cannot run ${tool} --version: ${(stderr || stdout).trim() || `exit code ${code}`}`);
  }
  return version;
}

export interface TableInfo {
  readonly schema: string;
  readonly name: string;
  readonly kind: 'table' | 'partitioned table';
  readonly rowEstimate: number;
  /** Analyzed after its last change (`pg_stat_user_tables`), so the estimate is worth comparing. */
  readonly statsFresh: boolean;
  /** Its owner, and its privileges as aclitem text (null: the defaults), which a restore must bring back. */
  readonly owner: string;
  readonly acl: readonly string[] | null;
}

/** The session settings that shape COPY text and that pg_dump leaves as the server has them. */
export interface OutputSettingValues {
  readonly timeZone: string;
  readonly byteaOutput: string;
  readonly lcMonetary: string;
}

export interface ServerInfo {
  readonly version: Version;
  readonly tables: readonly TableInfo[];
  readonly settings: OutputSettingValues;
}

/** The server's version and the user tables with row estimates, in one short connection. */
export async function serverInfo(c: Connection): Promise<ServerInfo> {
  const client = await pgClient(c);
  await client.connect();
  try {
    const v = await client.query<{
      server_version: string;
      num: string;
      tz: string;
      bytea: string;
      monetary: string;
    }>(
      `select current_setting('server_version') as server_version, current_setting('server_version_num') as num,
              current_setting('TimeZone') as tz, current_setting('bytea_output') as bytea,
              current_setting('lc_monetary') as monetary`,
    );
    const version = serverVersionOf(v.rows[0]?.server_version ?? '', v.rows[0]?.num ?? '');
    const t = await client.query<{
      schema: string;
      name: string;
      relkind: string;
      estimate: string;
      fresh: boolean | null;
      owner: string;
      acl: string[] | null;
    }>(
      `select n.nspname as schema, c.relname as name, c.relkind::text as relkind, c.reltuples::bigint::text as estimate,
              coalesce(s.last_analyze, s.last_autoanalyze) is not null and s.n_mod_since_analyze = 0 as fresh,
              pg_get_userbyid(c.relowner) as owner, c.relacl::text[] as acl
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         left join pg_stat_user_tables s on s.relid = c.oid
        where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
          and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
        order by 1, 2`,
    );
    const tables = t.rows.map((r) => ({
      schema: r.schema,
      name: r.name,
      kind: r.relkind === 'p' ? ('partitioned table' as const) : ('table' as const),
      rowEstimate: Number(r.estimate),
      statsFresh: r.fresh === true,
      owner: r.owner,
      acl: r.acl,
    }));
    const row = v.rows[0];
    const settings = {
      timeZone: row?.tz ?? '',
      byteaOutput: row?.bytea ?? '',
      lcMonetary: row?.monetary ?? '',
    };
    return { version, tables, settings };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Quotes an identifier for SQL. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
