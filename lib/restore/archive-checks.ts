import type { Readable, Writable } from 'node:stream';
import type { Manifest } from '../domain/manifest.js';
import {
  type CheckDepth,
  type CheckResult,
  checkContent,
  checkExactRowCounts,
  checkRowCounts,
  estimateWarnings,
  type ManifestTable,
  tableKey,
} from '../domain/restore-checks.js';
import type { Spawn } from '../platform/processes.js';
import { ArchiveCounter, type ArchiveCounts } from '../postgres/archive-counts.js';
import { digestRestoredTable } from '../postgres/copy-out.js';
import type { Connection } from '../postgres/pg-tools.js';
import { drained } from './pump.js';

/**
 * The checks of a restored database against the archive it came from: the archive is counted
 * (and at content depth digested) while the restore reads it, and each restored table is compared
 * with what the archive held for it.
 */

/** A reader of the archive's bytes as the restore reads them; digests rows only at content depth. */
export function archiveCounter(depth: CheckDepth): ArchiveCounter {
  return new ArchiveCounter({ digest: depth === 'content' });
}

/**
 * Copies `from` into `to`, every byte also to `counter`. A `to` that stops taking bytes (pg_restore
 * done with what it needed, or failed: its exit says which) does not stop the counting: the rest
 * is still read, so the counts cover the whole archive.
 */
export async function feedCounting(from: Readable, to: Writable, counter: ArchiveCounter): Promise<void> {
  let alive = true;
  const dead = () => {
    alive = false;
  };
  to.on('error', dead);
  to.on('close', dead);
  try {
    for await (const chunk of from) {
      counter.push(chunk as Buffer);
      if (alive && !to.write(chunk)) await drained(to);
    }
    if (alive) to.end();
  } finally {
    to.off('error', dead);
    to.off('close', dead);
  }
}

export interface ArchiveComparison {
  readonly checks: CheckResult[];
  readonly warnings: string[];
  /** Rows in the backup by `schema.name`, when the archive could be counted. */
  readonly backupRows: ReadonlyMap<string, number>;
}

export interface CompareRequest {
  readonly manifest: Manifest;
  readonly inScope: readonly ManifestTable[];
  readonly schemas: readonly string[];
  /** Restored row counts by `schema.name`. */
  readonly restored: ReadonlyMap<string, number>;
  readonly counts: ArchiveCounts;
  readonly depth: CheckDepth;
  readonly tolerance: number;
  /** The restored database, for reading tables back at content depth. */
  readonly connection: Connection;
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  readonly signal?: AbortSignal;
}

/** The row check (and at content depth the content check) and the estimate warnings. */
export async function compareWithArchive(r: CompareRequest): Promise<ArchiveComparison> {
  if (r.counts.kind === 'unsupported') {
    const checks = [checkRowCounts(r.inScope, r.restored, r.tolerance)];
    if (r.depth === 'content') {
      checks.push({
        name: "every table holds exactly the backup's data",
        kind: 'content',
        passed: false,
        value: `not compared: the archive's data could not be read (${r.counts.reason})`,
      });
    }
    return {
      checks,
      warnings: [
        `rows not counted in the archive (${r.counts.reason}): restored counts were compared with the dump's estimates instead`,
      ],
      backupRows: new Map(),
    };
  }
  const { contents } = r.counts;
  const backupRows = new Map([...contents.tables].map(([key, t]) => [key, t.rows]));
  const checks = [checkExactRowCounts(r.inScope, r.restored, backupRows, r.schemas)];
  const warnings = estimateWarnings(r.inScope, backupRows, r.tolerance);
  if (r.depth === 'content') {
    const wanted = new Set(r.schemas);
    const archived = new Map<string, string>();
    const restored = new Map<string, string>();
    const settings = {
      ...(contents.encoding ? { encoding: contents.encoding } : {}),
      ...(r.manifest.dumpSettings ?? {}),
    };
    for (const [key, t] of contents.tables) {
      if (t.digest === undefined || !r.restored.has(key)) continue;
      if (r.schemas.length > 0 && !wanted.has(t.schema)) continue;
      archived.set(key, t.digest);
      const back = await digestRestoredTable({
        connection: r.connection,
        env: r.env,
        ...(r.spawn ? { spawn: r.spawn } : {}),
        ...(r.signal ? { signal: r.signal } : {}),
        schema: t.schema,
        name: t.name,
        columns: t.columns,
        settings,
      });
      restored.set(key, back.digest);
    }
    checks.push(checkContent(r.inScope, restored, archived, r.schemas));
    if (!r.manifest.dumpSettings) {
      warnings.push(
        "the manifest does not record the dump's time zone and output settings: tables were read back in the restoring server's",
      );
    }
  }
  return { checks, warnings, backupRows };
}

/** The rows the backup holds for a table of the report (partitioned: its partitions'). */
export function backupRowsOf(
  t: ManifestTable,
  backupRows: ReadonlyMap<string, number>,
  partitions: ReadonlyMap<string, readonly string[]>,
): number | undefined {
  if (backupRows.size === 0) return undefined;
  if (t.kind === 'table') return backupRows.get(tableKey(t)) ?? 0;
  const leaves = partitions.get(tableKey(t));
  return leaves ? leaves.reduce((n, k) => n + (backupRows.get(k) ?? 0), 0) : undefined;
}
