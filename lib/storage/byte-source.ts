import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/**
 * Bytes read into buffers that the reader supplies, as `fs.read` does. A store that uploads in
 * parts fills each part buffer in place and reuses it once uploaded, so nothing is allocated per
 * read. (A Node stream allocates a new chunk for every read; on a dump of gigabytes those
 * chunks wait for the garbage collector, tens of megabytes at a time.)
 */
export interface ByteSource {
  /** Fills `into` from its start; resolves with the bytes filled, fewer than its length only at the end. */
  fill(into: Buffer): Promise<number>;
  /** Stops the source: a pending fill and every later one reject, with `error` when given. */
  destroy(error?: Error): void;
}

/** What a store writes: a Node stream, or a byte source that fills the store's own buffers. */
export type Body = Readable | ByteSource;

function isByteSource(body: Body): body is ByteSource {
  return typeof (body as Partial<ByteSource>).fill === 'function';
}

/** Whether the source has nothing left (it reads one byte to find out, which is lost if there was one). */
export async function endsHere(source: ByteSource): Promise<boolean> {
  return (await source.fill(Buffer.alloc(1))) === 0;
}

/** A body as a byte source: a stream's chunks are copied into the buffers given. */
export function sourceOf(body: Body): ByteSource {
  if (isByteSource(body)) return body;
  const chunks = body[Symbol.asyncIterator]();
  let rest: Buffer | undefined;
  let ended = false;
  return {
    async fill(into) {
      let filled = 0;
      while (filled < into.length && !ended) {
        if (!rest) {
          const next = await chunks.next();
          if (next.done) ended = true;
          else rest = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as string);
          continue;
        }
        const copied = rest.copy(into, filled);
        filled += copied;
        rest = copied < rest.length ? rest.subarray(copied) : undefined;
      }
      return filled;
    },
    destroy(error) {
      body.destroy(error);
    },
  };
}

interface PendingFill {
  readonly into: Buffer;
  filled: number;
  readonly resolve: (bytes: number) => void;
  readonly reject: (error: Error) => void;
}

const SOCKET_PATH_BYTES = 103;

/** Bytes read while no fill was waiting (or past a full one), kept until the next fill. */
const SPILL_BYTES = 256 * 1024;

/**
 * An output for a child process that this process reads as a {@link ByteSource}: a connected
 * pair of UNIX sockets. `childEnd` goes to `spawn` as the child's stdout, and the caller closes
 * its own copy once the child is spawned; the other end reads straight into the buffers that fills supply (`onread`), so the
 * child's output is never cut into chunks here. The listening socket lives in a private
 * directory (mode 0700) for the moment it takes to connect, so only this user could connect.
 */
export async function childOutput(): Promise<{ childEnd: Socket; source: ByteSource }> {
  // A UNIX socket's path has room for 103 bytes on every system (107 on Linux); a longer one is
  // cut short where it is bound, which would put the socket outside its private directory.
  const pattern = join(tmpdir(), 'pgbp-out-XXXXXX', 'out');
  if (Buffer.byteLength(pattern) > SOCKET_PATH_BYTES) {
    throw new RangeError(
      `the temporary directory ${tmpdir()} is too long a path for the dump's output socket (${pattern} is over ${SOCKET_PATH_BYTES} bytes): set TMPDIR to a shorter one`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'pgbp-out-'));
  try {
    const server = createServer({ pauseOnConnect: true });
    const path = join(dir, 'out');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, resolve);
    });
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const reader = new SocketSource();
    const socket = connect({ path, onread: { buffer: () => reader.nextBuffer(), callback: reader.onRead } });
    const connected = new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    reader.attach(socket);
    const [childEnd] = await Promise.all([accepted, connected]).finally(() => server.close());
    return { childEnd, source: reader };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The reading end of {@link childOutput}. Reads land in the waiting fill's buffer; what arrives
 * while no fill waits goes to a small spill buffer, and reading pauses until a fill takes it.
 */
class SocketSource implements ByteSource {
  private socket: Socket | undefined;
  private pending: PendingFill | undefined;
  private readonly spill = Buffer.allocUnsafe(SPILL_BYTES);
  /** Bytes in the spill buffer not yet handed to a fill: [spillStart, spillEnd). */
  private spillStart = 0;
  private spillEnd = 0;
  private ended = false;
  private failure: Error | undefined;

  attach(socket: Socket): void {
    this.socket = socket;
    socket.on('end', () => {
      this.ended = true;
      this.settle();
    });
    socket.on('error', (error) => this.fail(error));
  }

  /** Where the next read goes: the rest of the waiting fill's buffer, or the spill buffer. */
  nextBuffer(): Buffer {
    const p = this.pending;
    return p && this.spillEnd === this.spillStart && p.filled < p.into.length
      ? p.into.subarray(p.filled)
      : this.spill;
  }

  /** Returns false to pause reading: no fill waits, or it is full. */
  readonly onRead = (bytes: number, buffer: Uint8Array): boolean => {
    if (buffer === this.spill) {
      this.spillStart = 0;
      this.spillEnd = bytes;
      if (this.pending) this.takeSpill(this.pending);
    } else if (this.pending) {
      this.pending.filled += bytes;
    }
    this.settle();
    return this.pending !== undefined && this.spillStart === this.spillEnd;
  };

  fill(into: Buffer): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('a fill is already waiting'));
    return new Promise((resolve, reject) => {
      const p: PendingFill = { into, filled: 0, resolve, reject };
      this.pending = p;
      this.takeSpill(p);
      this.settle();
      if (this.pending && this.spillStart === this.spillEnd) this.socket?.resume();
    });
  }

  destroy(error?: Error): void {
    this.fail(error ?? new Error('the output was closed before its end'));
    this.socket?.destroy();
  }

  private takeSpill(p: PendingFill): void {
    const copied = this.spill.copy(p.into, p.filled, this.spillStart, this.spillEnd);
    p.filled += copied;
    this.spillStart += copied;
  }

  /** Resolves the waiting fill once its buffer is full, or at the end (with what it holds). */
  private settle(): void {
    const p = this.pending;
    if (!p) return;
    const spillLeft = this.spillEnd > this.spillStart;
    if (p.filled === p.into.length || (this.ended && !spillLeft)) {
      this.pending = undefined;
      p.resolve(p.filled);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(this.failure);
  }
}
