import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DegradedStore } from './push.js';
import { spoolRoot } from './spool.js';

/** A store that keeps failing is alerted of once in this long, not once per segment. */
export const DEGRADED_ALERT_INTERVAL_MS = 3_600_000;
/** A claim left by a call that died while alerting; taken over after this. */
const CLAIM_STALE_MS = 60_000;

/** Where the pushes of one data directory note when they last alerted of each store. */
export function degradedStateDir(dataDir: string): string {
  return join(spoolRoot(dataDir), 'degraded');
}

function fileOf(dir: string, url: string): string {
  return join(dir, createHash('sha256').update(url).digest('hex').slice(0, 16));
}

async function alertedAt(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  const at = text ? Date.parse((JSON.parse(text) as { alertedAt?: string }).alertedAt ?? '') : Number.NaN;
  return Number.isNaN(at) ? undefined : at;
}

/**
 * The degraded stores that are due an alert, each claimed for this call: none was sent for that
 * store within {@link DEGRADED_ALERT_INTERVAL_MS} (the state lives in the data directory, in
 * pg_wal/.pgbp/degraded/, written by the postgres user like the rest of pgbp's corner). Concurrent
 * pushes (PostgreSQL's archiver, the pushes ahead) claim each store once.
 */
export async function claimDegradedAlerts(
  dataDir: string,
  stores: readonly DegradedStore[],
  now: Date,
): Promise<DegradedStore[]> {
  const dir = degradedStateDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const due: DegradedStore[] = [];
  for (const store of stores) {
    const path = fileOf(dir, store.url);
    const last = await alertedAt(path);
    // A clock set back is no reason to stay quiet for longer than the interval.
    if (last !== undefined && now.getTime() - last < DEGRADED_ALERT_INTERVAL_MS && last <= now.getTime()) {
      continue;
    }
    const lock = `${path}.claim`;
    if (!(await takeClaim(lock, now))) continue;
    try {
      const again = await alertedAt(path);
      if (again !== undefined && again !== last) continue;
      const temp = `${path}.${process.pid}`;
      await writeFile(
        temp,
        `${JSON.stringify({ role: store.role, url: store.url, alertedAt: now.toISOString() })}\n`,
        { mode: 0o600 },
      );
      await rename(temp, path);
      due.push(store);
    } finally {
      await unlink(lock).catch(() => {});
    }
  }
  return due;
}

async function takeClaim(lock: string, now: Date): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(now.toISOString());
      await fh.close();
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const at = Date.parse(await readFile(lock, 'utf8').catch(() => ''));
      if (!Number.isNaN(at) && Math.abs(now.getTime() - at) < CLAIM_STALE_MS) return false;
      await unlink(lock).catch(() => {});
    }
  }
  return false;
}

/** Forgets the claim of an alert that was not delivered, so the next push tries again. */
export async function releaseDegradedAlert(dataDir: string, store: DegradedStore): Promise<void> {
  await unlink(fileOf(degradedStateDir(dataDir), store.url)).catch(() => {});
}
