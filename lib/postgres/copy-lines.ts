import { hash } from 'node:crypto';

/**
 * The rows of COPY text (PostgreSQL's text format: one line per row, newlines inside values
 * escaped as `\n`), counted and, when asked, digested. The digest is of the rows as a multiset: a
 * sum of each line's hash, so it does not depend on the order the rows come in (a restored table
 * need not hand its rows back in the order they were dumped), and a changed, missing or extra
 * row changes it.
 *
 * pg_dump ends a table's data with the line `\.` (and blank lines after it); no row can be that
 * line, since COPY writes a backslash in a value as `\\`. What follows it is not counted.
 */
export class CopyLines {
  rows = 0;
  private ended = false;
  private carry: Buffer | undefined;
  private readonly lanes: Uint32Array | undefined;

  constructor(digest: boolean) {
    this.lanes = digest ? new Uint32Array(4) : undefined;
  }

  /** Bytes of COPY text, in order; `buf` may be reused by the caller once this returns. */
  push(buf: Buffer, from = 0, to = buf.length): void {
    let start = from;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0 || nl >= to) break;
      if (this.carry) {
        this.line(Buffer.concat([this.carry, buf.subarray(start, nl)]));
        this.carry = undefined;
      } else this.line(buf.subarray(start, nl));
      start = nl + 1;
    }
    if (start < to) {
      const rest = buf.subarray(start, to);
      this.carry = this.carry ? Buffer.concat([this.carry, rest]) : Buffer.from(rest);
    }
  }

  private line(line: Buffer): void {
    if (this.ended) return;
    if (line.length === 2 && line[0] === 0x5c && line[1] === 0x2e) {
      this.ended = true;
      return;
    }
    this.rows += 1;
    const lanes = this.lanes;
    if (lanes) {
      const h = hash('md5', line, 'buffer') as unknown as Buffer;
      lanes[0] = ((lanes[0] as number) + h.readUInt32LE(0)) >>> 0;
      lanes[1] = ((lanes[1] as number) + h.readUInt32LE(4)) >>> 0;
      lanes[2] = ((lanes[2] as number) + h.readUInt32LE(8)) >>> 0;
      lanes[3] = ((lanes[3] as number) + h.readUInt32LE(12)) >>> 0;
    }
  }

  /** A last line without its newline counts too (COPY never writes one, but a cut stream might). */
  finish(): void {
    if (this.carry && this.carry.length > 0) this.line(this.carry);
    this.carry = undefined;
  }

  /** The multiset digest, with the row count in it; undefined when not asked for. */
  digest(): string | undefined {
    if (!this.lanes) return undefined;
    return `${[...this.lanes].map((v) => v.toString(16).padStart(8, '0')).join('')}:${this.rows}`;
  }
}
