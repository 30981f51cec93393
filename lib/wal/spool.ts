import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, type Stats, statfsSync, statSync, unlinkSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * pgbp's own corner of a data directory, `pg_wal/.pgbp/`: the prefetch spool of wal-fetch and
 * the records of wal-push's pushes ahead. Inside pg_wal, so base backups never copy it and it
 * sits on the file system of the files it becomes (a spooled segment is renamed into place).
 * Everything in it is a hint that is checked before use: losing it costs speed, never data.
 * Each archive has a folder of its own there (see {@link archiveTag}): what was fetched from or
 * stored in one archive never answers for another. The launcher (cli/pgbp) keeps its last tag
 * beside them, `.tag-fetch` and `.tag-push`, with what it was computed from.
 */
export function spoolRoot(dataDir: string): string {
  return join(dataDir, 'pg_wal', '.pgbp');
}

export function prefetchDir(dataDir: string, tag: string): string {
  return join(spoolRoot(dataDir), 'prefetch', tag);
}

export function pushedDir(dataDir: string, tag: string): string {
  return join(spoolRoot(dataDir), 'pushed', tag);
}

/** The options of a wal-push or wal-fetch command line that choose the archive. */
export interface ArchiveOptions {
  /** The config file, as given or as found (an absolute path); none for the built-in defaults. */
  readonly configFile?: string;
  readonly store?: string;
  readonly cluster?: string;
}

/**
 * Names the archive a command line reads or writes, from what chooses it: the config file's
 * path and contents, `--store` and `--cluster`, and the working directory (a relative store).
 * Computed without parsing the config, so that a call whose work is already done
 * (cli/wal-fast-path.ts) knows which records are its own before loading anything: after a change
 * of archive_command to another store, what was stored in the old one answers nothing. The
 * contents enter as their SHA-256, so that the tag is a function of short strings, which the
 * launcher (cli/pgbp) keeps beside it and compares instead of hashing them on every call.
 */
export function archiveTag(cwd: string, options: ArchiveOptions): string {
  const hash = createHash('sha256');
  const file = options.configFile ? resolve(cwd, options.configFile) : '';
  for (const part of [cwd, file, options.store ?? '', options.cluster ?? '']) {
    hash.update(part).update('\0');
  }
  if (file) hash.update(sha256Of(readFileSync(file)));
  return hash.digest('hex').slice(0, 16);
}

/**
 * A spooled segment or a push record: `<name>-<sha256>`, or `<name>-<sha256>-<crc>-<size>` with
 * the CRC and size that coreutils `cksum` gives for the same bytes, which cli/pgbp (the `sh`
 * launcher) checks in a few milliseconds where a SHA-256 would cost more than the call.
 */
const ENTRY = /^([0-9A-F]{24})-([0-9a-f]{64})(?:-([0-9]{1,10})-([0-9]{1,12}))?$/;

/** One file of a spool or of the push records. */
export interface SpoolEntry {
  /** The file's name in its folder. */
  readonly file: string;
  readonly sha256: string;
}

/**
 * The spool's small calls that the prefetcher and the pusher make over and over (a listing, the
 * position, the free space, a sweep) block: each takes microseconds on the local file system of
 * pg_wal, and the same call made through libuv's thread pool cost 5 to 25 times the CPU here
 * (readFile 290 µs against 12, readdir 110 against 24, stat 73 against 3), dozens of them per
 * segment, beside the recovery or the load on the same cores.
 */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The spooled files of a folder (or the push records): segment name → its entry. */
export function spooled(dir: string): Map<string, SpoolEntry> {
  const found = new Map<string, SpoolEntry>();
  for (const n of namesIn(dir)) {
    const m = ENTRY.exec(n);
    if (m?.[1] && m[2]) found.set(m[1], { file: n, sha256: m[2] });
  }
  return found;
}

/** An entry's name for `name` with these bytes' digest, and their `cksum` when known. */
export function entryName(name: string, sha256: string, check?: string): string {
  return check ? `${name}-${sha256}-${check}` : `${name}-${sha256}`;
}

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Takes a spooled segment out of the spool into `dest` when its bytes still have the digest in
 * its name; a damaged one is removed. Returns the size of the verified segment now at `dest`,
 * or undefined when the spool could not provide it.
 */
export async function takeSpooled(dir: string, entry: SpoolEntry, dest: string): Promise<number | undefined> {
  const { sha256 } = entry;
  const path = join(dir, entry.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch {
    return undefined;
  }
  if (sha256Of(bytes) !== sha256) {
    await unlink(path).catch(() => {});
    return undefined;
  }
  try {
    await rename(path, dest);
    return bytes.length;
  } catch {
    await unlink(path).catch(() => {});
    return undefined;
  }
}

/** The segment that recovery asked for last (written by every fetch): the prefetcher keeps ahead of it. */
export async function writePosition(dir: string, name: string): Promise<void> {
  await writeFile(join(dir, POSITION), name, { mode: 0o600 }).catch(() => {});
}

export function readPosition(dir: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, POSITION), 'utf8');
  } catch {
    return undefined;
  }
  return /^[0-9A-F]{24}$/.test(text) ? text : undefined;
}

const POSITION = '.position';
const PREFETCHER_LOCK = '.prefetcher';

/** The lock the one prefetcher of a spool holds. */
export function prefetcherLock(dir: string): string {
  return join(dir, PREFETCHER_LOCK);
}

/** The marker of a segment that the prefetcher is fetching right now. */
export function inflightMarker(dir: string, name: string): string {
  return join(dir, `.${name}.inflight`);
}

/** Whether a live process holds the spool's prefetcher lock. */
export async function prefetcherRunning(dir: string): Promise<boolean> {
  const pid = Number(await readFile(prefetcherLock(dir), 'utf8').catch(() => ''));
  return pid > 0 && alive(pid);
}

/**
 * Takes segment `name` out of the spool into `dest`, verified (see {@link takeSpooled}), waiting
 * up to `waitMs` while the live prefetcher is fetching it. Undefined when the spool cannot
 * provide it: the caller fetches it from the archive.
 */
export async function takeFromSpool(
  dir: string,
  name: string,
  dest: string,
  waitMs: number,
): Promise<{ readonly sha256: string; readonly bytes: number } | undefined> {
  let entries = spooled(dir);
  if (!entries.has(name) && existsSync(inflightMarker(dir, name)) && (await prefetcherRunning(dir))) {
    const deadline = Date.now() + waitMs;
    while (!entries.has(name) && existsSync(inflightMarker(dir, name)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
      entries = spooled(dir);
    }
  }
  const entry = entries.get(name);
  if (!entry) return undefined;
  const bytes = await takeSpooled(dir, entry, dest);
  return bytes === undefined ? undefined : { sha256: entry.sha256, bytes };
}

/**
 * What a push ahead recorded for the file at `path` (see push-ahead.ts): its digest and size
 * when a record `<name>-<sha256>` is there and the file's bytes still have that digest. The
 * record is used up either way; without it the file is pushed as usual.
 */
export async function takePushRecord(
  records: string,
  name: string,
  path: string,
): Promise<{ readonly sha256: string; readonly bytes: number } | undefined> {
  const recorded = spooled(records).get(name);
  if (!recorded) return undefined;
  const bytes = await readFile(path);
  await unlink(join(records, recorded.file)).catch(() => {});
  return sha256Of(bytes) === recorded.sha256 ? { sha256: recorded.sha256, bytes: bytes.length } : undefined;
}

/**
 * Writes a verified segment into the spool: a temporary name, renamed once complete, under its
 * digest and `check` (its cksum, lib/wal/cksum.ts) when known.
 */
export async function spool(
  dir: string,
  name: string,
  sha256: string,
  bytes: Uint8Array,
  check?: string,
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${name}.${process.pid}`);
  const fh = await open(temp, 'w', 0o600);
  try {
    await fh.writeFile(bytes);
  } catch (error) {
    await fh.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw error;
  }
  await fh.close();
  await rename(temp, join(dir, entryName(name, sha256, check)));
}

/** Free bytes on the file system of `dir` (or of its nearest existing parent). */
export function freeBytes(dir: string): number {
  for (let d = dir; ; d = join(d, '..')) {
    try {
      const s = statfsSync(d);
      return s.bavail * s.bsize;
    } catch {
      if (d === '/') return 0;
    }
  }
}

/** Removes files of `dir` that `stale` says are stale, and temporary files older than `maxAgeMs`. */
export function sweep(
  dir: string,
  stale: (name: string) => boolean,
  maxAgeMs: number,
  now: number = Date.now(),
): void {
  for (const n of namesIn(dir)) {
    const path = join(dir, n);
    const entry = ENTRY.exec(n);
    if (entry?.[1] && stale(entry[1])) {
      removeFile(path);
      continue;
    }
    let s: Stats;
    try {
      s = statSync(path);
    } catch {
      continue;
    }
    if (s.isFile() && now - s.mtimeMs > maxAgeMs) removeFile(path);
  }
}

/** Removes a file if it is there (another process may have taken it). */
export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Gone already, or not ours to remove: nothing a caller would do about it.
  }
}

/**
 * A lock held by a live process: a file with its pid, created exclusively; one left by a
 * process that died is taken over. Returns a release function, or undefined when it is held.
 */
export async function tryLock(path: string): Promise<(() => Promise<void>) | undefined> {
  await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => {
        await unlink(path).catch(() => {});
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
      const pid = Number(await readFile(path, 'utf8').catch(() => ''));
      if (pid > 0 && alive(pid)) return undefined;
      await unlink(path).catch(() => {});
    }
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Marks a file as touched now (a push-ahead record's age is when it was written). */
export async function touch(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => {});
}

/** Whether a live process holds the lock at `path` (a file with its pid, see {@link tryLock}). */
export async function lockHolderAlive(path: string): Promise<boolean> {
  const pid = Number(await readFile(path, 'utf8').catch(() => ''));
  return pid > 0 && alive(pid);
}
