import { type Child, type Spawn, type StdioEntry, startChild } from '../platform/processes.js';

/** How a dump is compressed: zstd's level and threads (0: one per core). */
export interface ZstdCompression {
  readonly level: number;
  readonly threads: number;
}

export interface ZstdOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly spawn?: Spawn;
  /** Where the input comes from; a pipe from this process unless told. */
  readonly stdin?: StdioEntry;
  /** Where the output goes: a descriptor (a file, a socket), or a pipe to this process. */
  readonly stdout?: StdioEntry;
  /**
   * Each stderr line as it comes, with zstd asked to end with its summary of the bytes read and
   * written (`-vv` instead of `-q`): how a caller that does not see the input learns its size.
   */
  readonly onSummaryLine?: (line: string) => void;
}

/**
 * zstd as a filter from stdin to stdout, compressing (with the given level and threads) or
 * decompressing: the one place it is started, for the dump and for the restore. `--no-sparse`:
 * the output may be a file that a reader follows as it grows, which holes would confuse.
 */
export function startZstd(mode: ZstdCompression | 'decompress', options: ZstdOptions): Child {
  const verbosity = options.onSummaryLine ? '-vv' : '-q';
  const args =
    mode === 'decompress'
      ? ['-d', verbosity, '-c']
      : [
          `-${mode.level}`,
          mode.threads === 1 ? '--single-thread' : `-T${mode.threads}`,
          verbosity,
          '-c',
          '--no-sparse',
        ];
  return startChild('zstd', args, {
    env: options.env,
    stdin: options.stdin ?? 'pipe',
    stdout: options.stdout ?? 'pipe',
    ...(options.onSummaryLine ? { onStderrLine: options.onSummaryLine } : {}),
    ...(options.spawn ? { spawn: options.spawn } : {}),
  });
}
