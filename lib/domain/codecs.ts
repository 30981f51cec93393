/**
 * The codecs a backup is stored with. A module of its own, without the manifest's schemas: the
 * config's schema names them, and what only reads a config (the wal commands, at a recovery's
 * start) does not build the manifests' schemas too (6 ms of a prefetcher's start, profiled).
 */
export const CODECS = ['zstd', 'gzip', 'none'] as const;
export type Codec = (typeof CODECS)[number];
