// The project's Node bundles and the one esbuild setting they share. Built at install time
// (`npm ci` runs the `prepare` script, `node cli/bundle.mjs`) into dist/, so that running pgbp
// writes nothing into its install directory and reads no source file; the tests build first
// (test/support/build-setup.ts), so they always run the current sources.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Fargate entrypoints: the image runs them, and the local runner starts them as children. */
export const TASK_ENTRIES = [
  'tasks/dump.ts',
  'tasks/restore.ts',
  'tasks/base-backup.ts',
  'tasks/pitr-drill.ts',
];

/**
 * What an install holds under dist/: the CLI (split, so a command loads only its own modules)
 * and the task entrypoints (one self-contained file each, as in the image).
 */
export const BUNDLES = {
  cli: { entryPoints: ['cli/main.ts'], splitting: true },
  tasks: { entryPoints: TASK_ENTRIES, splitting: false },
  // What PostgreSQL's once-per-segment calls load before the CLI: Node's own modules only.
  fast: { entryPoints: ['cli/wal-fast-path.ts'], splitting: false },
};

function options({ entryPoints, sourcemap, splitting }) {
  return {
    entryPoints,
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
  };
}

/** Bundles TypeScript entry points into self-contained ESM files for Node 20+. */
export async function bundle({ entryPoints, outdir, outfile, sourcemap = 'linked', splitting = false }) {
  const { build } = await import('esbuild');
  await build({
    ...options({ entryPoints, sourcemap, splitting }),
    ...(outdir ? { outdir, outExtension: { '.js': '.mjs' } } : { outfile }),
  });
}

function filesUnder(dir) {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath ?? e.path, e.name));
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
}

function sameContents(path, contents) {
  try {
    return readFileSync(path).equals(contents);
  } catch {
    return false;
  }
}

/**
 * Builds every bundle of {@link BUNDLES} into `<outRoot>/<name>/`. Each file is written only
 * when it changed, to a temporary name renamed into place, so a pgbp already running from
 * dist/ never reads a half-written file; files the new build no longer has are removed.
 */
export async function buildAll(root, outRoot = join(root, 'dist')) {
  const { build } = await import('esbuild');
  for (const [name, spec] of Object.entries(BUNDLES)) {
    const outdir = join(outRoot, name);
    const result = await build({
      ...options({
        entryPoints: spec.entryPoints.map((e) => join(root, e)),
        sourcemap: false,
        splitting: spec.splitting,
      }),
      outdir,
      outExtension: { '.js': '.mjs' },
      write: false,
    });
    const wanted = new Set();
    for (const file of result.outputFiles) {
      const path = resolve(file.path);
      wanted.add(path);
      if (sameContents(path, file.contents)) continue;
      mkdirSync(dirname(path), { recursive: true });
      const temp = `${path}.${process.pid}.tmp`;
      writeFileSync(temp, file.contents);
      renameSync(temp, path);
    }
    for (const path of filesUnder(outdir)) {
      if (!wanted.has(resolve(path))) rmSync(path, { force: true });
    }
  }
  return outRoot;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  await buildAll(root);
}
