// Bundles the Fargate entrypoints into single files for the container image (dist/tasks/*.mjs).
import { build } from 'esbuild';

const outdir = process.argv[2] ?? 'dist/tasks';
await build({
  entryPoints: ['tasks/dump.ts', 'tasks/restore.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outdir,
  outExtension: { '.js': '.mjs' },
  // Some dependencies are CommonJS and call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __pgbpRequire } from 'node:module'; const require = __pgbpRequire(import.meta.url);" },
  // pg's optional native binding is not used.
  external: ['pg-native'],
  logLevel: 'warning',
});
