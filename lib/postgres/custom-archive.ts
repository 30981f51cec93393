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
export const MAX_TOC_BYTES = 256 * 1024 * 1024;

/** The input ended inside the header or TOC: wait for more bytes. */
export class NeedMore extends Error {}

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
  /**
   * The statement of an ENCODING or STDSTRINGS entry (`SET client_encoding = 'UTF8';`), or the
   * GRANTs and REVOKEs of an ACL or DEFAULT ACL entry.
   */
  readonly defn?: string;
  /** The role that owns the object (empty for entries without one). */
  readonly owner: string;
  /** The tablespace the object is created in, when not the database's default. */
  readonly tablespace?: string;
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

/** The entries whose definitions are kept: session settings, and the privileges a restore may need to leave out. */
const KEPT_DEFINITIONS: ReadonlySet<string> = new Set(['ENCODING', 'STDSTRINGS', 'ACL', 'DEFAULT ACL']);

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
export function readArchiveInt(buf: Buffer, at: number, intSize: number): number {
  const v = intSize === 4 ? buf.readUInt32LE(at + 1) : buf.readUIntLE(at + 1, intSize);
  return buf[at] ? -v : v;
}

/**
 * Parses the header and TOC at the start of `buf`. Throws NeedMore when `buf` ends first, and
 * UnsupportedArchiveError for anything this reader does not know.
 */
export function parseToc(buf: Buffer): ArchiveToc {
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
    const defn = KEPT_DEFINITIONS.has(desc) ? c.str() : c.skip();
    c.skipStr(); // dropStmt
    const copyStmt = desc === 'TABLE DATA' ? c.str() : c.skip();
    const namespace = c.str() ?? '';
    const tablespace = c.str() ?? '';
    c.skipStr(); // tableam (1.14)
    if (minor >= 16) c.int(); // relkind
    const owner = c.str() ?? '';
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
      owner,
      ...(tablespace ? { tablespace } : {}),
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
