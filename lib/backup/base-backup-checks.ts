import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { foldersOf, listWal } from '../catalog/physical.js';
import { type BackupHistory, backupHistoryFileName, parseBackupHistory } from '../domain/base-backup.js';
import { BaseBackupFailedError } from '../domain/errors.js';
import { parseWalObjectKey, walFolder } from '../domain/physical-layout.js';
import {
  parseWalFileName,
  segmentName,
  segmentNumber,
  segmentsPerLog,
  type WalFileName,
} from '../domain/wal-names.js';
import { type Connection, pgClient } from '../postgres/pg-tools.js';
import { serverVersionOf } from '../postgres/versions.js';
import type { BackupStore } from '../storage/store.js';
import { decompress } from '../wal/codec.js';

/**
 * What a base backup reads of the cluster before it starts (version, system identifier, segment
 * size, archive mode, tablespaces, where its WAL is) and of the archive before its manifest may
 * be written (its backup history file, then the WAL from start to stop).
 */

export const BUILT_IN_TABLESPACES = ['pg_default', 'pg_global'];

export interface ServerFacts {
  readonly version: string;
  readonly major: number;
  readonly segmentBytes: number;
  readonly archiveMode: string;
  readonly tablespaces: readonly { readonly name: string; readonly location: string }[];
  /** PostgreSQL's database system identifier (pg_control_system()), decimal. */
  readonly systemIdentifier: string;
  /** Whether the server is a standby (its base backups leave no backup history file). */
  readonly inRecovery: boolean;
  /** The WAL segment being written before the backup starts (on a primary): its start is at or after it. */
  readonly currentWal?: string;
}

export async function serverFacts(connection: Connection): Promise<ServerFacts> {
  const client = await pgClient(connection);
  await client.connect();
  try {
    const facts = await client.query<{
      version: string;
      num: string;
      seg: string;
      archive: string;
      system: string;
      recovery: boolean;
      wal: string | null;
    }>(
      `select current_setting('server_version') as version, current_setting('server_version_num') as num,
              (select setting from pg_settings where name = 'wal_segment_size') as seg,
              current_setting('archive_mode') as archive,
              (select system_identifier::text from pg_control_system()) as system,
              pg_is_in_recovery() as recovery,
              case when not pg_is_in_recovery() then pg_walfile_name(pg_current_wal_lsn()) end as wal`,
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
      systemIdentifier: row?.system ?? '',
      inRecovery: row?.recovery ?? false,
      ...(row?.wal ? { currentWal: row.wal } : {}),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Lists the archive until every segment is in it, or the deadline passes: then the base
 * backup fails, naming the segments missing (archive_command is failing or behind).
 */
export async function waitForWal(
  store: BackupStore,
  cluster: string,
  segments: readonly string[],
  deadline: Deadline,
  pollMs: number,
): Promise<Date> {
  const folders = foldersOf(store, cluster, segments);
  const { until, ms: deadlineMs } = deadline;
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

/** How long the archive may take: until this time (epoch ms), `ms` after the wait began. */
export interface Deadline {
  readonly until: number;
  readonly ms: number;
}

export function deadlineIn(ms: number): Deadline {
  return { until: Date.now() + ms, ms };
}

export interface HistorySearch {
  /** The segment being written before the backup started: the backup's start is in it or later. */
  readonly from: string;
  /** The label the backup gave the server. */
  readonly label: string;
  readonly segmentBytes: number;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * The backup history file of the base backup labelled `label`, from the archive: the server
 * writes it at the backup's end and does not end the backup before it is archived, so finding it
 * with our label is the archive's own word that it holds this backup's WAL up to the stop
 * segment. It is looked for from the segment current before the backup (in that segment's 4 GiB
 * folder and the next), read, verified against the digest its key carries, and waited for like the
 * WAL, up to the same deadline.
 */
export async function waitForBackupHistory(
  store: BackupStore,
  cluster: string,
  search: HistorySearch,
  deadline: Deadline,
  pollMs: number,
): Promise<BackupHistory> {
  const from = parseWalFileName(search.from) as WalFileName;
  const perLog = segmentsPerLog(search.segmentBytes);
  const nextLog = (Math.floor(segmentNumber(search.from, search.segmentBytes) / perLog) + 1) * perLog;
  const folders = [
    from,
    parseWalFileName(segmentName(from.timeline, nextLog, search.segmentBytes)) as WalFileName,
  ].map((f) => `${walFolder(store.prefix, cluster, f)}/`);
  const checked = new Set<string>();
  const { until, ms: deadlineMs } = deadline;
  for (;;) {
    for (const folder of folders) {
      for await (const o of store.list(folder)) {
        const parsed = parseWalObjectKey(o.key);
        const file = parsed ? parseWalFileName(parsed.name) : undefined;
        if (!parsed || file?.kind !== 'backup' || file.timeline !== from.timeline) continue;
        if (parsed.name.slice(0, 24) < search.from || checked.has(o.key)) continue;
        checked.add(o.key);
        const text = (await decompress(await store.getBytes(o.key), search.env)).toString('utf8');
        if (createHash('sha256').update(text).digest('hex') !== parsed.sha256) {
          throw new BaseBackupFailedError(
            `the backup history file ${parsed.name} in ${store.url} is damaged: its SHA-256 is not the one its name carries`,
          );
        }
        const history = parseBackupHistory(text);
        if (history?.label !== search.label) continue;
        if (backupHistoryFileName(history.startLsn, history.timeline, search.segmentBytes) !== parsed.name) {
          throw new BaseBackupFailedError(
            `the backup history file ${parsed.name} in ${store.url} names another start (${text.split('\n')[0]})`,
          );
        }
        return history;
      }
    }
    if (Date.now() >= until) {
      throw new BaseBackupFailedError(
        `the backup history file of "${search.label}" did not reach the archive within ${Math.round(deadlineMs / 1000)} s: none in ${store.url} (cluster ${cluster}) from ${search.from} on; is archive_command running pgbp wal-push for this cluster?`,
      );
    }
    await delay(Math.min(pollMs, Math.max(0, until - Date.now())));
  }
}
