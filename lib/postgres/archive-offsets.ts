import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import {
  type ArchiveToc,
  BLK_BLOBS,
  BLK_DATA,
  K_OFFSET_NO_DATA,
  K_OFFSET_POS_SET,
  MAX_TOC_BYTES,
  NeedMore,
  parseToc,
  readArchiveInt,
} from './custom-archive.js';

/**
 * The data blocks of a custom archive (`pg_dump -Fc`) as they go by: where each starts, for the
 * data offsets that pg_dump leaves unset when it writes to a pipe (filled into the spooled file,
 * so that `pg_restore --jobs` can seek to each table's data), and each table's bytes for a
 * reader of them. The format's header and table of contents are read in custom-archive.ts.
 */

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
