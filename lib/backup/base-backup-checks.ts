import { setTimeout as delay } from 'node:timers/promises';
import { foldersOf, listWal } from '../catalog/physical.js';
import { BaseBackupFailedError } from '../domain/errors.js';
import { type Connection, pgClient } from '../postgres/pg-tools.js';
import { serverVersionOf } from '../postgres/versions.js';
import type { BackupStore } from '../storage/store.js';

/**
 * What a base backup reads of the cluster before it starts (version, segment size, archive
 * mode, tablespaces) and of the archive before its manifest may be written (the WAL from start
 * to stop).
 */

export const BUILT_IN_TABLESPACES = ['pg_default', 'pg_global'];

export interface ServerFacts {
  readonly version: string;
  readonly major: number;
  readonly segmentBytes: number;
  readonly archiveMode: string;
  readonly tablespaces: readonly { readonly name: string; readonly location: string }[];
}

export async function serverFacts(connection: Connection): Promise<ServerFacts> {
  const client = await pgClient(connection);
  await client.connect();
  try {
    const facts = await client.query<{ version: string; num: string; seg: string; archive: string }>(
      `select current_setting('server_version') as version, current_setting('server_version_num') as num,
              (select setting from pg_settings where name = 'wal_segment_size') as seg,
              current_setting('archive_mode') as archive`,
    );
    const spaces = await client.query<{ name: string; location: string }>(
      `select spcname as name, pg_tablespace_location(oid) as location from pg_tablespace
        where spcname <> all($1) order by spcname`,
      [BUILT_IN_TABLESPACES],
    );
    const row = facts.rows[0];
    const version = serverVersionOf(row?.version ?? '', row?.num ?? '');
    return {
      version: version.text,
      major: version.major,
      segmentBytes: Number(row?.seg ?? 0),
      archiveMode: row?.archive ?? 'off',
      tablespaces: spaces.rows,
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The database system identifier: the first 8 bytes of global/pg_control (host byte order). */
export function systemIdentifierOf(pgControl: Buffer): string {
  if (pgControl.length < 8) throw new BaseBackupFailedError('global/pg_control in the backup is truncated');
  return pgControl.readBigUInt64LE(0).toString();
}

/**
 * Lists the archive until every segment is in it, or the deadline passes: then the base
 * backup fails, naming the segments missing (archive_command is failing or behind).
 */
export async function waitForWal(
  store: BackupStore,
  cluster: string,
  segments: readonly string[],
  deadlineMs: number,
  pollMs: number,
): Promise<Date> {
  const folders = foldersOf(store, cluster, segments);
  const until = Date.now() + deadlineMs;
  for (;;) {
    const { segments: archived } = await listWal(store, cluster, folders);
    const have = new Set(archived.map((s) => s.name));
    const missing = segments.filter((s) => !have.has(s));
    if (missing.length === 0) return new Date();
    if (Date.now() >= until) {
      throw new BaseBackupFailedError(
        `the WAL of the base backup did not reach the archive within ${Math.round(deadlineMs / 1000)} s: ${missing.join(', ')} missing from ${store.url} (cluster ${cluster}); is archive_command running pgbp wal-push for this cluster?`,
      );
    }
    await delay(Math.min(pollMs, Math.max(0, until - Date.now())));
  }
}
