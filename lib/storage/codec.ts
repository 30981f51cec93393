import type { Codec } from '../domain/manifest.js';
import type { Child } from '../platform/processes.js';
import { startZstd, type ZstdCompression, type ZstdOptions } from './zstd.js';

/**
 * Codecs are stages of a byte stream, between the process that makes or reads the archive and
 * the store, never part of a store: a wrapper of the store (encryption, a second store) sees the
 * stored bytes whatever the codec.
 *
 * The stage that compresses a logical dump on its way to the store: zstd for `zstd`; none for
 * `gzip` and `none`, whose compression (if any) is pg_dump's own.
 */
export function startEncoder(
  codec: Codec,
  compression: ZstdCompression,
  options: ZstdOptions,
): Child | undefined {
  return codec === 'zstd' ? startZstd(compression, options) : undefined;
}

/**
 * The stage that turns a stored dump back into the archive pg_restore reads: zstd -d for
 * `zstd`; none for `gzip` and `none`, which pg_restore reads as they are.
 */
export function startDecoder(codec: Codec, options: ZstdOptions): Child | undefined {
  return codec === 'zstd' ? startZstd('decompress', options) : undefined;
}
