import { createHash } from 'node:crypto';
import {
  appendFile,
  chmod,
  chown,
  mkdtemp,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { BaseManifest } from '../domain/base-backup.js';
import { CorruptBackupError, RecoveryRefusedError } from '../domain/errors.js';
import { describeExit, exitedCleanly, type Spawn, startChild } from '../platform/processes.js';
import { serverTool } from '../postgres/server-tools.js';
import { type BackupStore, readAgainst, requireKeyFor } from '../storage/store.js';
import { startZstd } from '../storage/zstd.js';

/**
 * The data directory a recovery writes: refused unless it is new or empty (the guide's
 * `rm -rf $PGDATA/*` is the operator's decision), filled in a temporary directory beside it
 * and renamed into place only once the base backup's digest and PostgreSQL's own manifest
 * have been verified, so a corrupt backup leaves the directory as it was found.
 */

export interface DataDirectoryState {
  readonly path: string;
  /** It exists (empty); its mode and owner are kept. */
  readonly existed: boolean;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** Refuses a data directory that is not new or empty, or that a server runs on. */
export async function checkDataDirectory(pgdata: string): Promise<DataDirectoryState> {
  const path = resolve(pgdata);
  const parent = dirname(path);
  const parentStat = await stat(parent).catch(() => undefined);
  if (!parentStat?.isDirectory()) {
    throw new RecoveryRefusedError(`${parent}, the parent of --pgdata, is not a directory`);
  }
  const s = await stat(path).catch(() => undefined);
  if (!s) return { path, existed: false };
  if (!s.isDirectory()) throw new RecoveryRefusedError(`--pgdata ${path} exists and is not a directory`);
  const entries = await readdir(path);
  if (entries.includes('postmaster.pid')) {
    throw new RecoveryRefusedError(
      `--pgdata ${path} belongs to a server (postmaster.pid is there): stop it and empty the directory yourself if it is to be replaced; nothing was written`,
    );
  }
  if (entries.length > 0) {
    throw new RecoveryRefusedError(
      `--pgdata ${path} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}): recovery writes only into a new or empty directory; nothing was written`,
    );
  }
  return { path, existed: true, mode: s.mode & 0o777, uid: s.uid, gid: s.gid };
}

export interface ExtractOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  /** The OS user the server will run as, when this process is root: the files become theirs. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /** Written into the directory before it is renamed into place (recovery.signal, settings). */
  readonly prepare?: (dir: string) => Promise<void>;
  readonly onProgress?: (bytes: number) => void;
}

/**
 * Streams the base backup from the store (SHA-256 checked as it goes) through zstd into tar,
 * in a temporary directory beside `target`; runs pg_verifybackup on it; then renames it into
 * place. Any failure removes the temporary directory: the target is left as it was found.
 */
export async function extractBaseBackup(
  store: BackupStore,
  base: BaseManifest,
  target: DataDirectoryState,
  options: ExtractOptions,
): Promise<{ readonly verified: boolean }> {
  await requireKeyFor(store, base);
  const temp = await mkdtemp(join(dirname(target.path), `.${basename(target.path)}.pgbp-`));
  try {
    await chmod(temp, 0o700);
    await streamInto(store, base, temp, options);
    // PostgreSQL's own check of every file against its backup_manifest (checksums, sizes).
    const verify = startChild(
      serverTool('pg_verifybackup', options.env),
      ['--no-parse-wal', '--quiet', temp],
      {
        env: options.env,
        ...(options.spawn ? { spawn: options.spawn } : {}),
      },
    );
    const verified = await verify.exited;
    if (!exitedCleanly(verified)) {
      throw new CorruptBackupError(
        `base backup ${base.id} does not match its backup_manifest: ${describeExit(verified)}`,
      );
    }
    await options.prepare?.(temp);
    if (options.owner) await chownTree(temp, options.owner.uid, options.owner.gid);
    if (target.existed) {
      if (target.uid !== undefined && target.gid !== undefined) await chown(temp, target.uid, target.gid);
      await chmod(temp, target.mode === 0o750 ? 0o750 : 0o700);
      await rmdir(target.path);
    }
    await rename(temp, target.path);
    return { verified: true };
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

async function streamInto(
  store: BackupStore,
  base: BaseManifest,
  dir: string,
  options: ExtractOptions,
): Promise<void> {
  const read = readAgainst(base);
  const source = await store.getStream(base.key, read.options);
  const zstd = startZstd('decompress', {
    env: options.env,
    stdin: 'pipe',
    stdout: 'pipe',
    ...(options.spawn ? { spawn: options.spawn } : {}),
  });
  const tar = startChild('tar', ['-x', '-f', '-', '-C', dir, '--no-same-owner'], {
    env: options.env,
    stdin: zstd.stdout ?? 'ignore',
    ...(options.spawn ? { spawn: options.spawn } : {}),
  });
  zstd.stdout?.destroy();
  const hash = createHash('sha256');
  let bytes = 0;
  const fed = new Promise<void>((resolveFed, rejectFed) => {
    const sink = zstd.stdin;
    if (!sink) {
      rejectFed(new Error('zstd has no input'));
      return;
    }
    source.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      options.onProgress?.(bytes);
      if (!sink.write(chunk)) {
        source.pause();
        sink.once('drain', () => source.resume());
      }
    });
    source.once('end', () => {
      sink.end();
      resolveFed();
    });
    source.once('error', (error) => {
      sink.destroy();
      rejectFed(error);
    });
    // zstd gone early (corrupt input, killed): stop reading; the digest and exits say why.
    sink.once('close', () => {
      if (source.readableEnded) return;
      source.destroy();
      resolveFed();
    });
  });
  const [feed, zExit, tExit] = await Promise.allSettled([fed, zstd.exited, tar.exited]);
  const digest = hash.digest('hex');
  if (feed.status === 'rejected') {
    zstd.stop();
    tar.stop();
    throw new CorruptBackupError(
      `reading base backup ${base.id} from ${store.url} failed: ${(feed.reason as Error).message}`,
    );
  }
  if (read.check && (bytes !== base.sizeBytes || digest !== base.sha256)) {
    throw new CorruptBackupError(
      `base backup ${base.id} is corrupt: ${base.key} holds ${bytes} bytes with SHA-256 ${digest}, its manifest says ${base.sizeBytes} bytes with ${base.sha256}; nothing was written`,
    );
  }
  for (const exit of [zExit, tExit]) {
    if (exit.status === 'fulfilled' && !exitedCleanly(exit.value)) {
      throw new CorruptBackupError(`extracting base backup ${base.id} failed: ${describeExit(exit.value)}`);
    }
  }
}

async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, uid, gid);
    else await chown(path, uid, gid);
  }
}

function confValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * The PostgreSQL 12+ way to ask for recovery: recovery.signal, and the settings appended to
 * postgresql.auto.conf (read after postgresql.conf, so they win).
 */
export async function writeRecoverySettings(
  dir: string,
  settings: Readonly<Record<string, string>>,
): Promise<void> {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}\n`);
  await appendFile(
    join(dir, 'postgresql.auto.conf'),
    `\n# recovery settings written by pgbp recover\n${lines.join('')}`,
  );
  await writeFile(join(dir, 'recovery.signal'), '');
}
