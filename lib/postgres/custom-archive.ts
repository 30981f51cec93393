import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * Just enough of PostgreSQL's custom archive format (`pg_dump -Fc`) to fill in the data offsets
 * that pg_dump leaves unset when it writes to a pipe, so that `pg_restore --jobs` can seek to each
 * table's data instead of every worker scanning the file for it.
 *
 * Layout as PostgreSQL reads and writes it: src/bin/pg_dump/pg_backup_archiver.c (ReadHead,
 * ReadToc, ReadInt, ReadStr, ReadOffset) and pg_backup_custom.c (_ReadExtraToc, _StartData,
 * _StartLOs, _skipData, _skipLOs), archive versions 1.14 (PostgreSQL 12 to 15), 1.15 (16: a
 * compression algorithm byte in the header) and 1.16 (17: relkind in each TOC entry, several
 * BLOBS entries). Anything else is refused, never guessed: the caller then restores as before.
 */

/** Data state of a TOC entry, the byte before its offset (pg_backup_archiver.h). */
export const K_OFFSET_POS_NOT_SET = 1;
export const K_OFFSET_POS_SET = 2;
export const K_OFFSET_NO_DATA = 3;
/** Data block types (pg_backup_archiver.h). */
export const BLK_DATA = 1;
export const BLK_BLOBS = 3;

const ARCH_CUSTOM = 1;
const MIN_MINOR = 14;
const MAX_MINOR = 16;
/** A header and TOC bigger than this is not what pg_dump writes; stop buffering it. */
const MAX_TOC_BYTES = 256 * 1024 * 1024;

/** The input ended inside the header or TOC: wait for more bytes. */
class NeedMore extends Error {}

/** The bytes are not an archive this reader knows. */
export class UnsupportedArchiveError extends Error {
  override readonly name = 'UnsupportedArchiveError';
}

export interface ArchiveTocEntry {
  readonly dumpId: number;
  readonly desc: string;
  /** The object's name (a SCHEMA entry's is the schema). */
  readonly tag: string;
  /** The schema the object is in; empty for objects outside any (the database, schemas themselves). */
  readonly namespace: string;
  readonly dataState: number;
  /** The recorded offset of its data block; meaningful when `dataState` is K_OFFSET_POS_SET. */
  readonly offset: number;
  /** File position of the data-state byte; the offset's `offSize` bytes follow it. */
  readonly fieldPosition: number;
  /** pg_dump's `COPY … FROM stdin;` for a TABLE DATA entry: the columns it dumped, in its order. */
  readonly copyStmt?: string;
  /** The statement of an ENCODING or STDSTRINGS entry (`SET client_encoding = 'UTF8';`). */
  readonly defn?: string;
}

/** How pg_dump compressed the data blocks inside the archive (not the codec around the file). */
export type ArchiveCompression = 'none' | 'gzip' | 'lz4' | 'zstd';

export interface ArchiveToc {
  readonly version: string;
  readonly intSize: number;
  readonly offSize: number;
  readonly compression: ArchiveCompression;
  readonly entries: readonly ArchiveTocEntry[];
  /** File position just after the TOC, where the first data block starts. */
  readonly end: number;
}

class Cursor {
  pos = 0;
  intSize = 4;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new NeedMore();
  }
  byte(): number {
    this.need(1);
    const b = this.buf[this.pos] as number;
    this.pos += 1;
    return b;
  }
  int(): number {
    this.need(1 + this.intSize);
    const v = readArchiveInt(this.buf, this.pos, this.intSize);
    this.pos += 1 + this.intSize;
    return v;
  }
  /** ReadStr: an int length, -1 (any negative) for NULL, then the bytes. */
  str(): string | null {
    const n = this.int();
    if (n < 0) return null;
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  /** Skips a string that is not wanted: null, as if it were absent. */
  skip(): null {
    this.skipStr();
    return null;
  }
  skipStr(): void {
    const n = this.int();
    if (n < 0) return;
    this.need(n);
    this.pos += n;
  }
}

/** WriteInt's layout: a sign byte, then `intSize` bytes, least significant first. */
function readArchiveInt(buf: Buffer, at: number, intSize: number): number {
  const v = intSize === 4 ? buf.readUInt32LE(at + 1) : buf.readUIntLE(at + 1, intSize);
  return buf[at] ? -v : v;
}

/**
 * Parses the header and TOC at the start of `buf`. Throws NeedMore when `buf` ends first, and
 * UnsupportedArchiveError for anything this reader does not know.
 */
function parseToc(buf: Buffer): ArchiveToc {
  const c = new Cursor(buf);
  if (buf.length < 5) throw new NeedMore();
  if (buf.toString('latin1', 0, 5) !== 'PGDMP') throw new UnsupportedArchiveError('no PGDMP magic');
  c.pos = 5;
  const major = c.byte();
  const minor = c.byte();
  const rev = c.byte();
  const version = `${major}.${minor}.${rev}`;
  if (major !== 1 || minor < MIN_MINOR || minor > MAX_MINOR) {
    throw new UnsupportedArchiveError(`archive version ${version}`);
  }
  c.intSize = c.byte();
  if (c.intSize !== 4) throw new UnsupportedArchiveError(`integer size ${c.intSize}`);
  const offSize = c.byte();
  if (offSize < 4 || offSize > 8) throw new UnsupportedArchiveError(`offset size ${offSize}`);
  const format = c.byte();
  if (format !== ARCH_CUSTOM) throw new UnsupportedArchiveError(`archive format ${format}, not custom`);
  let compression: ArchiveCompression;
  if (minor >= 15) {
    const algorithm = c.byte();
    const known: readonly ArchiveCompression[] = ['none', 'gzip', 'lz4', 'zstd'];
    const named = known[algorithm];
    if (!named) throw new UnsupportedArchiveError(`compression algorithm ${algorithm}`);
    compression = named;
  } else {
    // Before 1.15 a zlib level: 0 none, -1 zlib's default, 1 to 9.
    compression = c.int() === 0 ? 'none' : 'gzip';
  }
  for (let i = 0; i < 7; i += 1) c.int(); // creation date
  c.skipStr(); // database name
  c.skipStr(); // server version
  c.skipStr(); // pg_dump version

  const count = c.int();
  if (count < 0) throw new UnsupportedArchiveError(`TOC count ${count}`);
  const entries: ArchiveTocEntry[] = [];
  for (let i = 0; i < count; i += 1) {
    const dumpId = c.int();
    if (dumpId <= 0) throw new UnsupportedArchiveError(`TOC entry id ${dumpId}`);
    c.int(); // hadDumper
    c.skipStr(); // catalog tableoid
    c.skipStr(); // catalog oid
    const tag = c.str() ?? '';
    const desc = c.str() ?? '';
    c.int(); // section
    const defn = desc === 'ENCODING' || desc === 'STDSTRINGS' ? c.str() : c.skip();
    c.skipStr(); // dropStmt
    const copyStmt = desc === 'TABLE DATA' ? c.str() : c.skip();
    const namespace = c.str() ?? '';
    c.skipStr(); // tablespace
    c.skipStr(); // tableam (1.14)
    if (minor >= 16) c.int(); // relkind
    c.skipStr(); // owner
    const withOids = c.str();
    // A field read out of step shows here first: pg_dump writes "false", older ones "true".
    if (withOids !== 'false' && withOids !== 'true') {
      throw new UnsupportedArchiveError(`TOC entry ${dumpId} does not read as pg_dump writes it`);
    }
    let deps = 0;
    for (;;) {
      const n = c.int();
      if (n < 0) break;
      c.pos += n;
      deps += 1;
      if (deps > 1_000_000) throw new UnsupportedArchiveError(`TOC entry ${dumpId}: runaway dependencies`);
    }
    const fieldPosition = c.pos;
    const dataState = c.byte();
    if (
      dataState !== K_OFFSET_POS_NOT_SET &&
      dataState !== K_OFFSET_POS_SET &&
      dataState !== K_OFFSET_NO_DATA
    ) {
      throw new UnsupportedArchiveError(`TOC entry ${dumpId}: data state ${dataState}`);
    }
    c.pos += offSize;
    if (c.pos > buf.length) throw new NeedMore();
    const offset = buf.readUIntLE(fieldPosition + 1, Math.min(offSize, 6));
    entries.push({
      dumpId,
      desc,
      tag,
      namespace,
      dataState,
      offset,
      fieldPosition,
      ...(copyStmt ? { copyStmt } : {}),
      ...(defn ? { defn } : {}),
    });
  }
  if (c.pos > buf.length) throw new NeedMore();
  return { version, intSize: c.intSize, offSize, compression, entries, end: c.pos };
}

/**
 * The header and TOC from the start of an archive as it is read (chunks in order, from byte 0),
 * reading no further than their end. Throws UnsupportedArchiveError for bytes this reader does
 * not know, or a stream that ends inside them.
 */
export async function readTocFrom(chunks: AsyncIterable<Buffer>): Promise<ArchiveToc> {
  const head: Buffer[] = [];
  let length = 0;
  let nextAttempt = 4096;
  for await (const chunk of chunks) {
    head.push(chunk);
    length += chunk.length;
    if (length < nextAttempt) continue;
    try {
      return parseToc(Buffer.concat(head, length));
    } catch (error) {
      if (!(error instanceof NeedMore)) throw error;
      if (length > MAX_TOC_BYTES)
        throw new UnsupportedArchiveError(`no end of the table of contents in ${length} bytes`);
      nextAttempt = length * 2;
    }
  }
  try {
    return parseToc(Buffer.concat(head, length));
  } catch (error) {
    if (error instanceof NeedMore)
      throw new UnsupportedArchiveError(`the archive ends inside its table of contents (${length} bytes)`);
    throw error;
  }
}

/** The schemas an archive holds objects of, or defines: what `pg_restore --schema` can select. */
export function archiveSchemas(toc: ArchiveToc): string[] {
  const schemas = new Set<string>();
  for (const entry of toc.entries) {
    if (entry.namespace) schemas.add(entry.namespace);
    if (entry.desc === 'SCHEMA' && entry.tag) schemas.add(entry.tag);
  }
  return [...schemas].sort();
}

/** The header and TOC of a whole archive in memory. */
export function readToc(archive: Buffer): ArchiveToc {
  try {
    return parseToc(archive);
  } catch (error) {
    if (error instanceof NeedMore)
      throw new UnsupportedArchiveError('the archive ends inside its table of contents');
    throw error;
  }
}

const AT_BLOCK = 0;
const AT_CHUNK_LENGTH = 1;
const IN_CHUNK = 2;
const AT_BLOB_OID = 3;

/** Receives the bytes of each table's data block as a {@link BlockWalker} goes by them. */
export interface BlockSink {
  /** A BLK_DATA block of this entry starts. */
  start(dumpId: number): void;
  /** Bytes of its chunks, in order; `buf` is only valid during the call. */
  data(buf: Buffer, from: number, to: number): void;
  /** The block ended (its zero-length chunk). */
  end(dumpId: number): void;
}

/**
 * Walks the data blocks after the TOC as they go by: a block type byte and the dumpId, then
 * length-prefixed chunks up to a zero length; a BLOBS block is (oid, chunks…) repeated up to
 * oid 0. Records where each block starts, and hands table data to `sink` when there is one.
 */
export class BlockWalker {
  readonly blocks = new Map<number, number>();
  failure: string | undefined;
  private pos: number;
  private state = AT_BLOCK;
  private skip = 0;
  private inBlobs = false;
  private readonly pending: Buffer;
  private pendingLength = 0;
  private readonly intField: number;
  private dumpId = 0;

  constructor(
    start: number,
    private readonly intSize: number,
    private readonly sink?: BlockSink,
  ) {
    this.pos = start;
    this.intField = 1 + intSize;
    this.pending = Buffer.alloc(1 + this.intField);
  }

  push(chunk: Buffer, from = 0): void {
    let i = from;
    const length = chunk.length;
    while (i < length && this.failure === undefined) {
      if (this.state === IN_CHUNK) {
        const n = Math.min(this.skip, length - i);
        if (this.sink && !this.inBlobs) this.sink.data(chunk, i, i + n);
        i += n;
        this.pos += n;
        this.skip -= n;
        if (this.skip === 0) this.state = AT_CHUNK_LENGTH;
        continue;
      }
      const need = this.state === AT_BLOCK ? 1 + this.intField : this.intField;
      let field: Buffer;
      let at: number;
      if (this.pendingLength === 0 && length - i >= need) {
        field = chunk;
        at = i;
        i += need;
      } else {
        const n = Math.min(need - this.pendingLength, length - i);
        chunk.copy(this.pending, this.pendingLength, i, i + n);
        this.pendingLength += n;
        i += n;
        if (this.pendingLength < need) break;
        field = this.pending;
        at = 0;
        this.pendingLength = 0;
      }
      const fieldStart = this.pos;
      this.pos += need;
      this.field(field, at, fieldStart);
    }
  }

  private field(buf: Buffer, at: number, fieldStart: number): void {
    if (this.state === AT_BLOCK) {
      const type = buf[at] as number;
      const dumpId = readArchiveInt(buf, at + 1, this.intSize);
      if (type !== BLK_DATA && type !== BLK_BLOBS) {
        this.failure = `unknown data block type ${type} at byte ${fieldStart}`;
        return;
      }
      if (this.blocks.has(dumpId)) {
        this.failure = `a second data block for entry ${dumpId} at byte ${fieldStart}`;
        return;
      }
      this.blocks.set(dumpId, fieldStart);
      this.dumpId = dumpId;
      this.inBlobs = type === BLK_BLOBS;
      if (!this.inBlobs) this.sink?.start(dumpId);
      this.state = this.inBlobs ? AT_BLOB_OID : AT_CHUNK_LENGTH;
      return;
    }
    const value = readArchiveInt(buf, at, this.intSize);
    if (this.state === AT_BLOB_OID) {
      if (value === 0) {
        this.inBlobs = false;
        this.state = AT_BLOCK;
      } else this.state = AT_CHUNK_LENGTH;
      return;
    }
    // AT_CHUNK_LENGTH
    if (value < 0) {
      this.failure = `negative chunk length ${value} at byte ${fieldStart}`;
    } else if (value === 0) {
      if (!this.inBlobs) this.sink?.end(this.dumpId);
      this.state = this.inBlobs ? AT_BLOB_OID : AT_BLOCK;
    } else {
      this.skip = value;
      this.state = IN_CHUNK;
    }
  }

  /** Why the walk did not end cleanly on a block boundary, if it did not. */
  endFailure(): string | undefined {
    if (this.failure !== undefined) return this.failure;
    if (this.state !== AT_BLOCK || this.pendingLength !== 0) {
      return `the archive ends inside a data block (at byte ${this.pos + this.pendingLength})`;
    }
    return undefined;
  }
}

export type OffsetPlan =
  | {
      readonly kind: 'plan';
      readonly toc: ArchiveToc;
      /** The file's bytes before the first data block, as read. */
      readonly original: Buffer;
      /** The same bytes with the data offsets filled in. */
      readonly patched: Buffer;
      /** Entries whose offset was filled in. */
      readonly filled: number;
    }
  | { readonly kind: 'unsupported'; readonly reason: string };

/**
 * The header and TOC with each data entry's state set to K_OFFSET_POS_SET and its offset to the
 * start of its block, least significant byte first, as pg_dump writes them when it can seek.
 * Every field keeps its size, so nothing after it moves.
 */
export function fillOffsets(
  toc: ArchiveToc,
  original: Buffer,
  blocks: ReadonlyMap<number, number>,
): OffsetPlan {
  const byId = new Map(toc.entries.map((e) => [e.dumpId, e]));
  for (const [dumpId, start] of blocks) {
    const entry = byId.get(dumpId);
    if (!entry)
      return { kind: 'unsupported', reason: `data block for entry ${dumpId}, which is not in the TOC` };
    if (entry.dataState === K_OFFSET_NO_DATA) {
      return { kind: 'unsupported', reason: `data block for entry ${dumpId}, which the TOC says has none` };
    }
    if (start >= 2 ** (8 * toc.offSize)) {
      return { kind: 'unsupported', reason: `offset ${start} does not fit in ${toc.offSize} bytes` };
    }
  }
  const patched = Buffer.from(original);
  let filled = 0;
  for (const entry of toc.entries) {
    const start = blocks.get(entry.dumpId);
    if (start === undefined) continue;
    const at = entry.fieldPosition;
    if (entry.dataState === K_OFFSET_POS_SET) {
      if (entry.offset !== start) {
        return {
          kind: 'unsupported',
          reason: `entry ${entry.dumpId} records offset ${entry.offset}, its block is at ${start}`,
        };
      }
      continue;
    }
    patched[at] = K_OFFSET_POS_SET;
    patched.fill(0, at + 1, at + 1 + toc.offSize);
    patched.writeUIntLE(start, at + 1, Math.min(toc.offSize, 6));
    filled += 1;
  }
  return { kind: 'plan', toc, original, patched, filled };
}

/**
 * Reads an archive as it goes by (chunks in order, from byte 0) and works out its data offsets
 * without holding more than the header and TOC. It never throws: what it cannot read makes the
 * result `unsupported`, with the reason.
 */
export class OffsetCollector {
  /** `sinkFor` is asked, once the TOC is read, for a reader of the table data; it must not throw. */
  constructor(private readonly sinkFor?: (toc: ArchiveToc) => BlockSink | undefined) {}

  private head: Buffer[] = [];
  private headLength = 0;
  private nextAttempt = 4096;
  private toc: ArchiveToc | undefined;
  private original: Buffer | undefined;
  private walker: BlockWalker | undefined;
  private failure: string | undefined;

  push(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    try {
      if (this.walker) {
        this.walker.push(chunk);
        return;
      }
      this.head.push(chunk);
      this.headLength += chunk.length;
      if (this.headLength >= this.nextAttempt) this.tryToc(false);
    } catch (error) {
      // A reader that cannot follow the bytes must not stop them going to the file.
      this.failure = `unreadable: ${(error as Error).message}`;
    }
  }

  private tryToc(last: boolean): void {
    const buf = Buffer.concat(this.head, this.headLength);
    this.head = [buf];
    try {
      this.toc = parseToc(buf);
    } catch (error) {
      if (error instanceof NeedMore) {
        if (last) this.failure = `the archive ends inside its table of contents (${buf.length} bytes)`;
        else if (buf.length > MAX_TOC_BYTES)
          this.failure = `no end of the table of contents in ${buf.length} bytes`;
        else this.nextAttempt = buf.length * 2;
      } else this.failure = (error as Error).message;
      return;
    }
    this.original = Buffer.from(buf.subarray(0, this.toc.end));
    this.head = [];
    this.walker = new BlockWalker(this.toc.end, this.toc.intSize, this.sinkFor?.(this.toc));
    this.walker.push(buf, this.toc.end);
  }

  /** Why the bytes could not be followed, if they could not (so far). */
  get failed(): string | undefined {
    return this.failure ?? this.walker?.failure;
  }

  /** The offsets to fill in, once every byte was pushed. */
  finish(): OffsetPlan {
    if (this.failure === undefined && !this.walker) this.tryToc(true);
    if (this.failure !== undefined) return { kind: 'unsupported', reason: this.failure };
    const { toc, original, walker } = this;
    if (!toc || !original || !walker) return { kind: 'unsupported', reason: 'no table of contents read' };
    const why = walker.endFailure();
    if (why !== undefined) return { kind: 'unsupported', reason: why };
    return fillOffsets(toc, original, walker.blocks);
  }
}

/** Reads a whole archive file and works out its data offsets (one sequential read). */
export async function planOffsets(path: string): Promise<OffsetPlan> {
  const collector = new OffsetCollector();
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    collector.push(chunk as Buffer);
  }
  return collector.finish();
}

/**
 * Writes the filled-in header and TOC over the start of the archive file, after checking that
 * the file still starts with the bytes the plan was made from. Returns false (and writes
 * nothing) when it does not.
 */
export async function writeOffsets(
  path: string,
  plan: Extract<OffsetPlan, { kind: 'plan' }>,
): Promise<boolean> {
  const file = await open(path, 'r+');
  try {
    const current = Buffer.alloc(plan.original.length);
    const { bytesRead } = await file.read(current, 0, current.length, 0);
    if (bytesRead !== current.length || !current.equals(plan.original)) return false;
    if (plan.filled === 0) return true;
    const { bytesWritten } = await file.write(plan.patched, 0, plan.patched.length, 0);
    if (bytesWritten !== plan.patched.length) {
      throw new Error(`wrote ${bytesWritten} of ${plan.patched.length} bytes of the table of contents`);
    }
    return true;
  } finally {
    await file.close();
  }
}
