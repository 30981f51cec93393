// One esbuild setting for every Node bundle of the project (the CLI, the Fargate tasks), and
// the rule that keeps a bundle fresh. esbuild loads only when something must be built.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/** Bundles TypeScript entry points into self-contained ESM files for Node 20+. */
export async function bundle({ entryPoints, outdir, outfile, sourcemap = 'linked', splitting = false }) {
  const { build } = await import('esbuild');
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

function newest(path) {
  if (!existsSync(path)) return 0;
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let latest = 0;
  for (const name of readdirSync(path)) latest = Math.max(latest, newest(join(path, name)));
  return latest;
}

/**
 * The folder of an up-to-date bundle of `entryPoints`, built first when it is missing or any
 * of `sources` is newer. Each build goes to its own folder under `<root>/.build`, named in
 * `.build/<name>-current`, so concurrent runs never see a half-written bundle; older builds are
 * kept a minute for runs that may still be loading them.
 */
export async function freshBundle({ root, name, entryPoints, sources, splitting = false }) {
  const buildRoot = join(root, '.build');
  const pointer = join(buildRoot, `${name}-current`);
  const outputs = entryPoints.map((e) => `${e.split('/').at(-1).replace(/\.ts$/, '')}.mjs`);
  if (existsSync(pointer)) {
    const dir = join(buildRoot, readFileSync(pointer, 'utf8').trim());
    const complete = outputs.every((o) => existsSync(join(dir, o)));
    const stale = statSync(pointer).mtimeMs < Math.max(...sources.map((s) => newest(join(root, s))));
    if (complete && !stale) return dir;
  }
  const folder = `${name}-${Date.now()}-${process.pid}`;
  mkdirSync(buildRoot, { recursive: true });
  await bundle({
    entryPoints: entryPoints.map((e) => join(root, e)),
    outdir: join(buildRoot, folder),
    splitting,
    sourcemap: false,
  });
  const temp = `${pointer}.${process.pid}`;
  writeFileSync(temp, folder);
  renameSync(temp, pointer);
  for (const old of readdirSync(buildRoot)) {
    const path = join(buildRoot, old);
    if (
      old.startsWith(`${name}-`) &&
      !old.endsWith('-current') &&
      old !== folder &&
      Date.now() - statSync(path).mtimeMs > 60_000
    ) {
      rmSync(path, { recursive: true, force: true });
    }
  }
  return join(buildRoot, folder);
}
