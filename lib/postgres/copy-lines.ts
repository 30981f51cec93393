/**
 * The rows of COPY text (PostgreSQL's text format: one line per row, newlines inside values
 * escaped as `\n`), counted and, when asked, digested. The digest is of the rows as a multiset: a
 * sum of each line's hash, so it does not depend on the order the rows come in (a restored table
 * need not hand its rows back in the order they were dumped), and a changed, missing or extra
 * row changes it.
 *
 * The line hash is two 32-bit MurmurHash3-style mixes computed in one pass: a fingerprint against
 * accidental difference, not against an adversary (whoever can write the store can write the
 * manifest too). A cryptographic hash per line costs microseconds a row here, several times the
 * restore itself; this costs about a nanosecond a byte.
 *
 * pg_dump ends a table's data with the line `\.` (and blank lines after it); no row can be that
 * line, since COPY writes a backslash in a value as `\\`. What follows it is not counted.
 */
export class CopyLines {
  rows = 0;
  private ended = false;
  /** Digesting: the start of a line cut by the end of a buffer. */
  private carry: Buffer | undefined;
  /** Counting only: the length of the cut line so far, and whether it is `\.` so far. */
  private carryLength = 0;
  private carryDot = true;
  private sum1 = 0;
  private sum2 = 0;

  constructor(private readonly digesting: boolean) {}

  /** Bytes of COPY text, in order; `buf` may be reused by the caller once this returns. */
  push(buf: Buffer, from = 0, to = buf.length): void {
    let start = from;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0 || nl >= to) break;
      if (this.digesting) {
        if (this.carry) {
          const line = Buffer.concat([this.carry, buf.subarray(start, nl)]);
          this.carry = undefined;
          this.line(line, 0, line.length);
        } else this.line(buf, start, nl);
      } else {
        const length = this.carryLength + nl - start;
        const dot =
          length === 2 &&
          (this.carryLength === 0
            ? buf[start] === 0x5c && buf[start + 1] === 0x2e
            : this.carryDot && isDotTail(buf, start, nl, this.carryLength));
        this.carryLength = 0;
        this.carryDot = true;
        this.counted(dot);
      }
      start = nl + 1;
    }
    if (start < to) {
      if (this.digesting) {
        const rest = buf.subarray(start, to);
        this.carry = this.carry ? Buffer.concat([this.carry, rest]) : Buffer.from(rest);
      } else {
        for (let i = start; i < to && this.carryDot; i += 1) {
          const at = this.carryLength + i - start;
          this.carryDot = at < 2 && buf[i] === (at === 0 ? 0x5c : 0x2e);
        }
        this.carryLength += to - start;
      }
    }
  }

  private counted(terminator: boolean): boolean {
    if (this.ended) return false;
    if (terminator) {
      this.ended = true;
      return false;
    }
    this.rows += 1;
    return true;
  }

  private line(buf: Buffer, from: number, to: number): void {
    const terminator = to - from === 2 && buf[from] === 0x5c && buf[from + 1] === 0x2e;
    if (!this.counted(terminator)) return;
    let h1 = 0x9747b28c;
    let h2 = 0x5bd1e995;
    let i = from;
    const whole = from + ((to - from) & ~3);
    for (; i < whole; i += 4) {
      const k =
        (buf[i] as number) |
        ((buf[i + 1] as number) << 8) |
        ((buf[i + 2] as number) << 16) |
        ((buf[i + 3] as number) << 24);
      let k1 = Math.imul(k, 0xcc9e2d51);
      k1 = Math.imul((k1 << 15) | (k1 >>> 17), 0x1b873593);
      h1 ^= k1;
      h1 = (Math.imul((h1 << 13) | (h1 >>> 19), 5) + 0xe6546b64) | 0;
      let k2 = Math.imul(k, 0x85ebca6b);
      k2 = Math.imul((k2 << 13) | (k2 >>> 19), 0xc2b2ae35);
      h2 ^= k2;
      h2 = (Math.imul((h2 << 15) | (h2 >>> 17), 5) + 0x52dce729) | 0;
    }
    let tail = 0;
    for (let shift = 0; i < to; i += 1, shift += 8) tail |= (buf[i] as number) << shift;
    h1 = fmix(h1 ^ Math.imul(tail, 0xcc9e2d51) ^ (to - from));
    h2 = fmix(h2 ^ Math.imul(tail, 0x85ebca6b) ^ (to - from));
    this.sum1 = (this.sum1 + (h1 >>> 0)) >>> 0;
    this.sum2 = (this.sum2 + (h2 >>> 0)) >>> 0;
  }

  /** A last line without its newline counts too (COPY never writes one, but a cut stream might). */
  finish(): void {
    if (this.digesting) {
      if (this.carry && this.carry.length > 0) this.line(this.carry, 0, this.carry.length);
      this.carry = undefined;
    } else if (this.carryLength > 0) {
      this.counted(this.carryLength === 2 && this.carryDot);
      this.carryLength = 0;
    }
  }

  /** The multiset digest, with the row count in it; undefined when not asked for. */
  digest(): string | undefined {
    if (!this.digesting) return undefined;
    const hex = (v: number) => v.toString(16).padStart(8, '0');
    return `${hex(this.sum1)}${hex(this.sum2)}:${this.rows}`;
  }
}

/** Whether a line whose first `before` bytes were `\` (and `.`) ends as `\.` with buf[from, to). */
function isDotTail(buf: Buffer, from: number, to: number, before: number): boolean {
  for (let i = from; i < to; i += 1) {
    const at = before + i - from;
    if (at >= 2 || buf[i] !== (at === 0 ? 0x5c : 0x2e)) return false;
  }
  return true;
}

function fmix(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return x ^ (x >>> 16);
}
