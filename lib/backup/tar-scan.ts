/**
 * Follows a tar stream as it passes through, without holding it: reads each member's header,
 * skips its data, and keeps the contents of the few small members asked for (backup_label and
 * backup_manifest of a base backup). Memory is the kept members and one header.
 */

const BLOCK = 512;

export class TarScanner {
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of the current member's data (and padding) still to pass. */
  private dataLeft = 0;
  /** Of those, the bytes that belong to the member (the rest is padding to the block). */
  private sizeLeft = 0;
  private keeping: Buffer[] | undefined;
  private keepingName = '';
  private ended = false;
  readonly kept = new Map<string, Buffer>();

  constructor(
    private readonly keep: ReadonlySet<string>,
    private readonly maxKeptBytes = 256 * 1024 * 1024,
  ) {}

  /** Whether the end-of-archive blocks were seen. */
  get complete(): boolean {
    return this.ended;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.ended) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, chunk.length - at);
        const own = Math.min(n, this.sizeLeft);
        if (this.keeping && own > 0) this.keeping.push(Buffer.from(chunk.subarray(at, at + own)));
        this.sizeLeft -= own;
        this.dataLeft -= n;
        at += n;
        if (this.dataLeft === 0 && this.keeping) {
          this.kept.set(this.keepingName, Buffer.concat(this.keeping));
          this.keeping = undefined;
        }
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, chunk.length - at);
      chunk.copy(this.header, this.headerFill, at, at + n);
      this.headerFill += n;
      at += n;
      if (this.headerFill === BLOCK) {
        this.headerFill = 0;
        this.onHeader();
      }
    }
  }

  private onHeader(): void {
    const h = this.header;
    if (h.every((b) => b === 0)) {
      // The first of the two zero blocks that end an archive.
      this.ended = true;
      return;
    }
    const field = (from: number, length: number) => {
      const raw = h.subarray(from, from + length);
      const end = raw.indexOf(0);
      return raw.subarray(0, end === -1 ? length : end).toString('utf8');
    };
    const magic = field(257, 6);
    const prefix = magic.startsWith('ustar') ? field(345, 155) : '';
    const name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const size = sizeOf(h.subarray(124, 136));
    const type = String.fromCharCode(h[156] ?? 0);
    this.sizeLeft = size;
    this.dataLeft = Math.ceil(size / BLOCK) * BLOCK;
    const regular = type === '0' || type === '\0';
    if (regular && this.keep.has(name)) {
      if (size > this.maxKeptBytes)
        throw new RangeError(`${name} in the tar stream is ${size} bytes, more than kept`);
      this.keeping = [];
      this.keepingName = name;
      if (this.dataLeft === 0) {
        this.kept.set(name, Buffer.alloc(0));
        this.keeping = undefined;
      }
    }
  }
}

/** A tar size field: octal digits, or base-256 when the high bit of the first byte is set. */
function sizeOf(field: Buffer): number {
  if (((field[0] ?? 0) & 0x80) !== 0) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return n;
  }
  const text = field.toString('ascii').replace(/\0.*$/s, '').trim();
  return text ? Number.parseInt(text, 8) : 0;
}
