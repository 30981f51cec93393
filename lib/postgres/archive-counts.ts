import { createInflate, type Inflate } from 'node:zlib';
import { type BlockSink, OffsetCollector, type OffsetPlan } from './archive-offsets.js';
import { CopyLines } from './copy-lines.js';
import type { ArchiveToc } from './custom-archive.js';

/**
 * What a custom-format archive holds, table by table, read as the archive goes by: each table's
 * rows, counted in its data (COPY text, one line per row), and with `digest` their multiset
 * digest (see {@link CopyLines}). Inflates the data blocks of an archive pg_dump compressed with
 * zlib; other compression inside the archive (lz4, zstd) is not read.
 */

export interface ArchivedTable {
  readonly schema: string;
  readonly name: string;
  readonly rows: number;
  readonly digest?: string;
  /** The columns pg_dump dumped, as it wrote them (`(a, "B", c)`), or '' for none. */
  readonly columns: string;
}

export interface ArchiveContents {
  /** The client encoding pg_dump dumped in (`UTF8`), from the archive's ENCODING entry. */
  readonly encoding?: string;
  /** By `schema.name`. */
  readonly tables: ReadonlyMap<string, ArchivedTable>;
}

export type ArchiveCounts =
  | { readonly kind: 'counted'; readonly contents: ArchiveContents }
  | { readonly kind: 'unsupported'; readonly reason: string };

/**
 * The column list of pg_dump's `COPY <table> <columns> FROM stdin;`: everything between the
 * (quoted) table name and ` FROM stdin;`. Generated columns are not in it, which is why a
 * restored table is read back with this list and not with `*`.
 */
export function copyColumns(copyStmt: string): string | undefined {
  const m = /^COPY (.*) FROM stdin;\s*$/s.exec(copyStmt);
  if (!m?.[1]) return undefined;
  const body = m[1];
  let quoted = false;
  for (let i = 0; i < body.length; i += 1) {
    const ch = body[i];
    if (ch === '"') quoted = !quoted;
    else if (ch === ' ' && !quoted) return body.slice(i + 1).trim();
  }
  return '';
}

/** `UTF8` from `SET client_encoding = 'UTF8';`. */
function encodingOf(toc: ArchiveToc): string | undefined {
  const defn = toc.entries.find((e) => e.desc === 'ENCODING')?.defn;
  return defn ? /client_encoding\s*=\s*'([^']+)'/.exec(defn)?.[1] : undefined;
}

interface Pending {
  readonly schema: string;
  readonly name: string;
  readonly columns: string;
  readonly lines: CopyLines;
}

export class ArchiveCounter {
  private readonly collector: OffsetCollector;
  private readonly tables = new Map<string, ArchivedTable>();
  private readonly inflating: Promise<void>[] = [];
  private toc: ArchiveToc | undefined;
  /** The inflater of the block being read, ended by `finish` when the archive stops inside it. */
  private inflate: Inflate | undefined;
  private failure: string | undefined;

  constructor(private readonly options: { readonly digest: boolean }) {
    this.collector = new OffsetCollector((toc) => this.sinkFor(toc));
  }

  push(chunk: Buffer): void {
    this.collector.push(chunk);
  }

  /** The data offsets, as an {@link OffsetCollector} of the same bytes would give them. */
  offsets(): OffsetPlan {
    return this.collector.finish();
  }

  /** Once every byte was pushed: the tables' counts, or why they could not be read. */
  async finish(): Promise<ArchiveCounts> {
    const plan = this.collector.finish();
    this.inflate?.end();
    await Promise.all(this.inflating);
    const why = this.failure ?? (plan.kind === 'unsupported' ? plan.reason : undefined);
    if (why !== undefined) return { kind: 'unsupported', reason: why };
    const encoding = this.toc ? encodingOf(this.toc) : undefined;
    return { kind: 'counted', contents: { ...(encoding ? { encoding } : {}), tables: this.tables } };
  }

  private sinkFor(toc: ArchiveToc): BlockSink | undefined {
    this.toc = toc;
    if (toc.compression !== 'none' && toc.compression !== 'gzip') {
      this.failure = `table data compressed with ${toc.compression} inside the archive`;
      return undefined;
    }
    const byId = new Map(toc.entries.map((e) => [e.dumpId, e]));
    let current: Pending | undefined;
    const done = (p: Pending) => {
      p.lines.finish();
      const digest = p.lines.digest();
      this.tables.set(`${p.schema}.${p.name}`, {
        schema: p.schema,
        name: p.name,
        rows: p.lines.rows,
        columns: p.columns,
        ...(digest !== undefined ? { digest } : {}),
      });
    };
    return {
      start: (dumpId) => {
        const entry = byId.get(dumpId);
        current = undefined;
        if (entry?.desc !== 'TABLE DATA') return;
        const columns = entry.copyStmt ? copyColumns(entry.copyStmt) : undefined;
        if (columns === undefined) {
          this.failure ??= `TABLE DATA ${entry.namespace}.${entry.tag} has no COPY statement this reader knows`;
          return;
        }
        const pending: Pending = {
          schema: entry.namespace,
          name: entry.tag,
          columns,
          lines: new CopyLines(this.options.digest),
        };
        current = pending;
        if (toc.compression === 'gzip') {
          const z = createInflate();
          this.inflate = z;
          z.on('data', (d: Buffer) => pending.lines.push(d));
          this.inflating.push(
            new Promise<void>((resolve) => {
              z.once('end', () => {
                done(pending);
                resolve();
              });
              z.once('error', (e) => {
                this.failure ??= `inflating the data of ${pending.schema}.${pending.name}: ${e.message}`;
                resolve();
              });
            }),
          );
        }
      },
      data: (buf, from, to) => {
        if (!current) return;
        if (this.inflate) this.inflate.write(Buffer.from(buf.subarray(from, to)));
        else current.lines.push(buf, from, to);
      },
      end: () => {
        if (current) {
          if (this.inflate) this.inflate.end();
          else done(current);
        }
        current = undefined;
        this.inflate = undefined;
      },
    };
  }
}

/** Counts (and digests) the tables of a whole archive read from `chunks`, from byte 0. */
export async function countArchive(
  chunks: AsyncIterable<Buffer>,
  options: { readonly digest: boolean },
): Promise<ArchiveCounts> {
  const counter = new ArchiveCounter(options);
  for await (const chunk of chunks) counter.push(chunk);
  return counter.finish();
}
