/**
 * What pgbp reads of PostgreSQL's own binary files to know which cluster a WAL file belongs
 * to: the long page header at the start of every WAL segment, and the control file. Only the
 * few fields needed, at their fixed offsets (little-endian, as on every platform pgbp runs on).
 */

/** XLP_LONG_HEADER in xlp_info: the page is the first of a segment and carries the long header. */
const XLP_LONG_HEADER = 0x0002;
/** The size of XLogLongPageHeaderData: what a segment must hold for its identity to be read. */
export const LONG_PAGE_HEADER_BYTES = 40;

/** The WAL page magic (XLOG_PAGE_MAGIC) of each major version this project supports. */
const PAGE_MAGIC: Readonly<Record<number, number>> = {
  53517: 14,
  53520: 15,
  53523: 16,
  53526: 17,
};

export interface SegmentIdentity {
  /** The cluster's system identifier, as PostgreSQL prints it (a decimal uint64). */
  readonly systemIdentifier: string;
  /** The major version whose WAL format the page magic names; undefined for an unknown magic. */
  readonly major?: number;
  readonly timeline: number;
  /** The segment size the cluster was initialised with (initdb --wal-segsize). */
  readonly segmentBytes: number;
  readonly pageBytes: number;
}

/**
 * The identity in a WAL segment's first page (XLogLongPageHeaderData: magic, info, timeline,
 * page address, remaining length, system identifier, segment size, block size); undefined when
 * the bytes do not start with a long page header.
 */
export function readSegmentIdentity(bytes: Uint8Array): SegmentIdentity | undefined {
  if (bytes.length < LONG_PAGE_HEADER_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, LONG_PAGE_HEADER_BYTES);
  const magic = view.getUint16(0, true);
  const info = view.getUint16(2, true);
  if ((info & XLP_LONG_HEADER) === 0) return undefined;
  const systemIdentifier = view.getBigUint64(24, true);
  const segmentBytes = view.getUint32(32, true);
  const pageBytes = view.getUint32(36, true);
  // A segment size is a power of two from 1 MiB to 1 GiB; anything else is not a header.
  if (segmentBytes < 1 << 20 || segmentBytes > 1 << 30 || (segmentBytes & (segmentBytes - 1)) !== 0) {
    return undefined;
  }
  if (systemIdentifier === 0n) return undefined;
  const major = PAGE_MAGIC[magic];
  return {
    systemIdentifier: systemIdentifier.toString(),
    ...(major !== undefined ? { major } : {}),
    timeline: view.getUint32(4, true),
    segmentBytes,
    pageBytes,
  };
}

/** The system identifier at the start of global/pg_control (ControlFileData.system_identifier). */
export function readControlSystemIdentifier(pgControl: Uint8Array): string | undefined {
  if (pgControl.length < 8) return undefined;
  const id = new DataView(pgControl.buffer, pgControl.byteOffset, 8).getBigUint64(0, true);
  return id === 0n ? undefined : id.toString();
}
