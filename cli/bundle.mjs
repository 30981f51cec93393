// One esbuild setting for every Node bundle of the project: the CLI and the Fargate tasks.
import { build } from 'esbuild';

/** Bundles TypeScript entry points into self-contained ESM files for Node 20+. */
export async function bundle({ entryPoints, outdir, outfile, sourcemap = 'linked', splitting = false }) {
  await build({
    entryPoints,
    ...(outdir ? { outdir, outExtension: { '.js': '.mjs' } } : { outfile }),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap,
    splitting,
    // Some dependencies are CommonJS and call require(); give the ESM bundle one.
    banner: {
      js: "import { createRequire as __pgbpRequire } from 'node:module'; const require = __pgbpRequire(import.meta.url);",
    },
    // pg's optional native binding is not used.
    external: ['pg-native'],
    logLevel: 'warning',
  });
}
