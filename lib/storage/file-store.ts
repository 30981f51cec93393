import { randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rmdir,
  stat,
  statfs,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { ObjectExistsError } from '../domain/errors.js';
import { type Body, sourceOf } from './byte-source.js';
import { fileStoreDirectory } from './file-url.js';
import type {
  BackupStore,
  DeleteResult,
  FileSink,
  ObjectDetails,
  ObjectInfo,
  PutOptions,
  StoreCapabilities,
} from './store.js';

/** The temporary name of a write in progress, or of one that was killed: `.<name>.partial-<hex>`. */
const PARTIAL = /^\..+\.partial-[0-9a-f]+$/;

/** What a stream is read and written in. */
const WRITE_BYTES = 1024 * 1024;

/**
 * A directory as a backup store: the on-premises NAS of the runbook. Each object is written
 * to a hidden temporary name, fsynced, then linked into place (which fails if the name
 * exists, so nothing is overwritten) and the directory fsynced. A dump is written into the
 * temporary file by the compressor itself ({@link FileStore.openSink}).
 */
export class FileStore implements BackupStore {
  readonly prefix = '';
  readonly url: string;
  readonly root: string;

  /**
   * A directory on this machine: its free space, files a compressor can write objects into, and
   * the files a decompressor can read objects from.
   */
  readonly capabilities: StoreCapabilities = {
    local: {
      freeSpace: () => this.freeSpace(),
      openSink: (key, options) => this.openSink(key, options),
      fileOf: (key) => this.pathOf(key),
    },
  };

  constructor(root: string) {
    this.root = resolve(root);
    this.url = `file://${this.root}`;
  }

  /** A store at `file:///dir`, `file://localhost/dir`, or `file:dir` relative to `cwd` ({@link fileStoreDirectory}). */
  static fromUrl(url: string, cwd?: string): FileStore {
    return new FileStore(fileStoreDirectory(url, cwd));
  }

  private pathOf(key: string): string {
    const path = resolve(this.root, key);
    if (!path.startsWith(this.root + sep)) throw new RangeError(`key escapes the store: ${key}`);
    return path;
  }

  private tagsPathOf(key: string): string {
    const path = this.pathOf(key);
    return join(dirname(path), `.${basename(path)}.tags.json`);
  }

  private async exists(path: string): Promise<boolean> {
    return stat(path).then(
      () => true,
      () => false,
    );
  }

  async openSink(key: string, options: PutOptions = {}): Promise<FileSink> {
    const target = this.pathOf(key);
    const refusal = (cause?: unknown) =>
      new ObjectExistsError(
        `${key} already exists in ${this.url}; refusing to overwrite it`,
        cause === undefined ? undefined : { cause },
      );
    if (!options.replace && (await this.exists(target))) throw refusal();
    // The first directory this call creates, if any: a failed write removes what it made.
    const created = await mkdir(dirname(target), { recursive: true });
    const temp = join(dirname(target), `.${basename(target)}.partial-${randomBytes(6).toString('hex')}`);
    const handle = await open(temp, 'wx+', 0o640);
    let isOpen = true;
    const close = async () => {
      if (!isOpen) return;
      isOpen = false;
      await handle.close();
    };
    const abort = async () => {
      await close().catch(() => {});
      await unlink(temp).catch(() => {});
      if (created) await removeEmptyDirectories(dirname(target), created);
    };
    const commit = async () => {
      try {
        // Dated by this process's clock, the clock of the host it runs on (for WAL, PostgreSQL's
        // own host), not by a NAS's: a recovery plan compares archived times with commit times.
        const now = new Date();
        await handle.utimes(now, now);
        await handle.sync();
        await close();
        if (options.replace) {
          await rename(temp, target);
        } else {
          try {
            await link(temp, target);
          } catch (cause) {
            throw (cause as NodeJS.ErrnoException).code === 'EEXIST' ? refusal(cause) : cause;
          }
          await unlink(temp);
        }
        await syncDirectory(dirname(target));
      } catch (error) {
        await abort();
        throw error;
      }
      if (options.tags && Object.keys(options.tags).length > 0) await this.putTags(key, options.tags);
    };
    return { handle, commit, abort };
  }

  private async writeAtomically(
    key: string,
    write: (fh: FileHandle) => Promise<number>,
    options: PutOptions,
  ): Promise<number> {
    const sink = await this.openSink(key, options);
    let bytes: number;
    try {
      bytes = await write(sink.handle);
    } catch (error) {
      await sink.abort();
      throw error;
    }
    await sink.commit();
    return bytes;
  }

  async putStream(key: string, body: Body, options: PutOptions = {}): Promise<{ bytes: number }> {
    const source = sourceOf(body);
    const bytes = await this.writeAtomically(
      key,
      async (fh) => {
        const buffer = Buffer.allocUnsafe(WRITE_BYTES);
        let total = 0;
        for (;;) {
          const filled = await source.fill(buffer);
          let offset = 0;
          while (offset < filled) {
            const { bytesWritten } = await fh.write(buffer, offset, filled - offset);
            offset += bytesWritten;
          }
          total += filled;
          options.onProgress?.(total);
          if (filled < buffer.length) return total;
        }
      },
      options,
    ).catch((error) => {
      source.destroy();
      throw error;
    });
    return { bytes };
  }

  async putBytes(key: string, data: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    await this.writeAtomically(
      key,
      async (fh) => {
        await fh.writeFile(buf);
        return buf.length;
      },
      options,
    );
  }

  async getStream(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    await stat(path);
    return createReadStream(path, { highWaterMark: 1024 * 1024 });
  }

  getBytes(key: string): Promise<Buffer> {
    return readFile(this.pathOf(key));
  }

  async head(key: string): Promise<ObjectDetails | undefined> {
    try {
      const s = await stat(this.pathOf(key));
      if (!s.isFile()) return undefined;
      return {
        key,
        size: s.size,
        lastModified: s.mtime,
        storageClass: 'STANDARD',
        thaw: { state: 'not-archived' },
        encryption: { type: 'none' },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const start = prefix.endsWith('/') ? prefix : dirname(prefix) === '.' ? '' : `${dirname(prefix)}/`;
    const found: ObjectInfo[] = [];
    const walk = async (relDir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(join(this.root, relDir), { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      const files: string[] = [];
      const dirs: string[] = [];
      for (const entry of entries) {
        // Hidden names are the store's own (tags, temporary files), except a temporary file that
        // a killed write left: it is debris, which retention must see to remove.
        if (entry.name.startsWith('.') && !(entry.isFile() && PARTIAL.test(entry.name))) continue;
        const rel = relDir ? `${relDir}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (`${rel}/`.startsWith(prefix) || prefix.startsWith(`${rel}/`)) dirs.push(rel);
        } else if (entry.isFile() && rel.startsWith(prefix)) files.push(rel);
      }
      // A folder's files stat'ed at once, not one after the other: a WAL folder holds up to 256
      // segments, and the prefetcher lists it before it can fetch a recovery's first segment.
      const stats = await Promise.all(files.map((rel) => stat(join(this.root, rel))));
      files.forEach((rel, i) => {
        const s = stats[i] as Stats;
        found.push({ key: rel, size: s.size, lastModified: s.mtime, storageClass: 'STANDARD' });
      });
      for (const rel of dirs) await walk(rel);
    };
    await walk(start.replace(/\/$/, ''));
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* found;
  }

  async deleteMany(keys: readonly string[]): Promise<DeleteResult> {
    const deleted: string[] = [];
    const failed: { key: string; code: string; message: string }[] = [];
    for (const key of keys) {
      try {
        await unlink(this.pathOf(key));
        await unlink(this.tagsPathOf(key)).catch(() => {});
        deleted.push(key);
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') deleted.push(key);
        else failed.push({ key, code: e.code ?? 'Error', message: e.message });
      }
    }
    return { deleted, failed };
  }

  async getTags(key: string): Promise<Record<string, string>> {
    try {
      return JSON.parse(await readFile(this.tagsPathOf(key), 'utf8')) as Record<string, string>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw error;
    }
  }

  async putTags(key: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await writeFile(this.tagsPathOf(key), JSON.stringify(tags));
  }

  /** Undefined while the directory does not exist: asking creates nothing. */
  async freeSpace(): Promise<{ totalBytes: number; freeBytes: number } | undefined> {
    try {
      const s = await statfs(this.root);
      return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
}

/** Removes `dir` and its parents up to `top`, while they are empty (another writer's files stay). */
async function removeEmptyDirectories(dir: string, top: string): Promise<void> {
  for (let current = dir; current.startsWith(top); current = dirname(current)) {
    try {
      await rmdir(current);
    } catch {
      return;
    }
    if (current === top) return;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
