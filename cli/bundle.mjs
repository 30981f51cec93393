// The project's Node bundles and the one esbuild setting they share. Built at install time
// (`npm ci` runs the `prepare` script, `node cli/bundle.mjs`) into dist/, so that running pgbp
// writes nothing into its install directory and reads no source file; the tests build first
// (test/support/build-setup.ts), so they always run the current sources.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Fargate entrypoints: the image runs them, and the local runner starts them as children. */
export const TASK_ENTRIES = [
  'tasks/dump.ts',
  'tasks/restore.ts',
  'tasks/base-backup.ts',
  'tasks/pitr-drill.ts',
];

/**
 * The CLI's front: what every start of `pgbp` loads, one CommonJS file (dist/cli/main.cjs) with
 * a V8 code cache beside it (cli/front.cjs loads both). An ES module costs Node its module
 * loader, and each file of a split build a read and a link; what is left is compiling the front,
 * which the cache saves: counted with callgrind, `pgbp status --help` ran 14 % more instructions
 * than a bare `node -e 0` as split ES modules, 10 % as one CommonJS file, 7 % with its cache
 * (bench/startup.bench.ts times it). So the
 * front holds the command line (commander, cli/main.ts, the declarations in cli/commands/) and
 * nothing that does the work: each action's `await import(…)` of anything else loads it from
 * the work build (dist/work/, ES modules, split), which a command reaches only when it runs.
 *
 * Two builds mean two copies of any module both hold, so the front may hold only modules
 * without state of their own: a second copy of lib/platform/processes.ts, say, would not know
 * the children the first one started, and an interrupt would not stop them. The front's
 * static imports are therefore limited to {@link FRONT}; the build fails naming any other.
 */
export const FRONT = [
  /^cli\/main\.ts$/,
  /^cli\/context\.ts$/,
  /^cli\/machine-options\.ts$/,
  /^cli\/progress\.ts$/,
  // The declarations; what runs a command (restore-run, wal-run) is work.
  /^cli\/commands\/(?!restore-run\.ts$|wal-run\.ts$)[a-z-]+\.ts$/,
  // Pure logic (its lint rules keep it free of Node's modules and of state): option checks.
  /^lib\/domain\/[a-z-]+\.ts$/,
  /^lib\/platform\/logger\.ts$/,
  /^package\.json$/,
  /^node_modules\/commander\//,
];

/**
 * What an install holds under dist/: the CLI's front and its work (see {@link FRONT}), the task
 * entrypoints (one self-contained file each, as in the image), the WAL fast path and the wal-*
 * commands (see {@link WAL}).
 */
export const BUNDLES = {
  cli: { entryPoints: ['cli/main.ts'], format: 'cjs', front: true },
  // Its entry points are the modules the front imports when a command runs, found as it builds.
  work: { entryPoints: [], splitting: true, entryNames: '[dir]/[name]', chunkNames: 'chunks/[name]-[hash]' },
  tasks: { entryPoints: TASK_ENTRIES, splitting: false },
  // What PostgreSQL's once-per-segment calls load before the CLI: Node's own modules only.
  fast: { entryPoints: ['cli/wal-fast-path.ts'], format: 'cjs' },
  // The wal-* commands, see WAL.
  wal: { entryPoints: ['cli/wal-main.ts'], format: 'cjs', wal: true },
};

/**
 * The wal-* commands' bundle (dist/wal/wal-main.cjs): what PostgreSQL's calls that the launcher
 * leaves to Node run, and the prefetcher whose start a recovery waits for before its first
 * segment. One CommonJS file holding everything they run, with a V8 code cache beside it
 * (cli/front.cjs loads both), and no CLI front: from the front and the work build's ES modules,
 * compiling the config schema, YAML and the stores made a prefetcher's start (to its first look
 * at a directory store) 116 ms against 50 ms for `node -e 0`; 86 ms from this bundle. The AWS
 * packages, most of what an S3 store loads and nothing a directory store uses, are a second file
 * (`aws-packages.cjs`, with its own cache), loaded only when a module that imports one of them
 * runs: from S3, 213 ms before, 138 ms so. The wal commands never load the work build, so each
 * module they run has one copy.
 */
export const WAL = {
  entry: 'wal-main.cjs',
  packages: 'aws-packages.cjs',
  /** The packages kept out of the wal bundle, for its packages file. */
  external: /^@(aws-sdk|aws-crypto|smithy)\//,
};

function options({ entryPoints, sourcemap, splitting, format = 'esm' }) {
  return {
    entryPoints,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format,
    sourcemap,
    splitting,
    // Some dependencies are CommonJS and call require(); give an ESM bundle one.
    ...(format === 'esm'
      ? {
          banner: {
            js: "import { createRequire as __pgbpRequire } from 'node:module'; const require = __pgbpRequire(import.meta.url);",
          },
        }
      : {}),
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

/**
 * The esbuild plugin of the front build: a dynamic import of a front module stays in the front
 * (bundled, loaded lazily); any other becomes an import of its file in the work build, collected
 * into `work`; a static import of anything but a front module fails the build.
 */
function frontPlugin(root, work) {
  const rel = (path) => relative(root, path).split(sep).join('/');
  const inFront = (path) => FRONT.some((pattern) => pattern.test(rel(path)));
  return {
    name: 'pgbp-front',
    setup(build) {
      // commander requires child_process for executable subcommands, which pgbp has none of:
      // loading it is a fifth of what a help text costs, so the front loads it only if asked.
      build.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
        args.importer.includes(`${sep}node_modules${sep}commander${sep}`)
          ? { path: 'child_process', namespace: 'pgbp-lazy' }
          : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'pgbp-lazy' }, () => ({
        contents:
          "let loaded; const load = () => (loaded ??= require('node:child_process'));\n" +
          'module.exports = new Proxy({}, { get: (_, key) => load()[key], has: (_, key) => key in load() });\n',
        loader: 'js',
      }));
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData?.inner || args.kind === 'entry-point' || args.path.startsWith('node:'))
          return undefined;
        const found = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: { inner: true },
        });
        if (found.errors.length > 0 || found.external || !found.path) return undefined;
        if (inFront(found.path)) return undefined;
        if (args.kind === 'dynamic-import') {
          work.add(found.path);
          const target = rel(found.path).replace(/\.[cm]?[jt]s$/, '.mjs');
          return { path: `../work/${target}`, external: true };
        }
        if (!found.path.startsWith(join(root, 'node_modules')) && !rel(found.path).startsWith('..')) {
          return {
            errors: [
              {
                text: `${rel(args.importer)} imports ${rel(found.path)} statically: the CLI's front (dist/cli/main.cjs, loaded by every start of pgbp) holds only the command line and modules without state (FRONT in cli/bundle.mjs); import it inside the action with \`await import(…)\``,
              },
            ],
          };
        }
        return {
          errors: [
            {
              text: `${rel(args.importer)} imports ${args.path}: the CLI's front bundles no package but commander (FRONT in cli/bundle.mjs); import it inside the action`,
            },
          ],
        };
      });
    },
  };
}

/**
 * The esbuild plugin of the wal bundle: each import of an AWS package ({@link WAL}) from the
 * project's modules becomes a call of the `__pgbpPackage` that cli/front.cjs hands the bundle,
 * which loads it from the packages file; the names are collected into `packages`.
 */
function walPlugin(packages) {
  return {
    name: 'pgbp-wal',
    setup(build) {
      build.onResolve({ filter: WAL.external }, (args) => {
        if (args.importer.includes(`${sep}node_modules${sep}`)) return undefined;
        packages.add(args.path);
        return { path: args.path, namespace: 'pgbp-package' };
      });
      build.onLoad({ filter: /.*/, namespace: 'pgbp-package' }, (args) => ({
        contents: `module.exports = __pgbpPackage(${JSON.stringify(args.path)});\n`,
        loader: 'js',
      }));
    },
  };
}

/** The wal bundle's packages file: each package of `packages`, loaded when first asked for. */
async function buildPackages(build, root, packages, outfile) {
  const names = [...packages].sort();
  const contents = `module.exports = {\n${names.map((n) => `  ${JSON.stringify(n)}: () => require(${JSON.stringify(n)}),\n`).join('')}};\n`;
  return build({
    ...options({ entryPoints: undefined, sourcemap: false, splitting: false, format: 'cjs' }),
    stdin: { contents, resolveDir: root, sourcefile: 'aws-packages.cjs', loader: 'js' },
    outfile,
    write: false,
  });
}

/**
 * The front's imports of its work, `import("../work/…")`, as calls of the `__pgbpImport` that
 * cli/front.cjs hands it: code compiled with a V8 code cache by node:vm cannot import() itself.
 * Loaded by a plain require (no such parameter), the front imports as usual.
 */
function frontImports(text) {
  const rewritten = text.replaceAll('import("../work/', '__pgbpImport("../work/');
  if (rewritten === text)
    throw new Error('the CLI front imports none of its work: cli/bundle.mjs no longer matches its output');
  const strict = rewritten.startsWith('"use strict";\n') ? '"use strict";\n' : '';
  return Buffer.from(
    `${strict}var __pgbpImport = typeof __pgbpImport === "function" ? __pgbpImport : (specifier) => import(specifier);\n${rewritten.slice(strict.length)}`,
  );
}

/**
 * Writes the V8 code cache (`<file>.cache`) of the front, or of the wal bundle and its packages
 * file (`--wal`), with the Node that builds, as cli/front.cjs does.
 */
function writeCodeCache(root, ...args) {
  const run = spawnSync(process.execPath, [join(root, 'cli', 'front.cjs'), ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr.trim() || `cli/front.cjs exited ${run.status}`);
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
 * Builds every bundle of {@link BUNDLES} into `<outRoot>/<name>/`, the CLI's front before its
 * work (whose entry points the front's build finds). Each file is written only when it changed,
 * to a temporary name renamed into place, so a pgbp already running from dist/ never reads a
 * half-written file; files the new build no longer has are removed.
 */
export async function buildAll(root, outRoot = join(root, 'dist')) {
  const { build } = await import('esbuild');
  const work = new Set();
  for (const [name, spec] of Object.entries(BUNDLES)) {
    const outdir = join(outRoot, name);
    const entryPoints = name === 'work' ? [...work].sort() : spec.entryPoints.map((e) => join(root, e));
    const packages = new Set();
    const plugins = spec.front ? [frontPlugin(root, work)] : spec.wal ? [walPlugin(packages)] : undefined;
    const result = await build({
      ...options({ entryPoints, sourcemap: false, splitting: spec.splitting, format: spec.format }),
      ...(spec.entryNames ? { entryNames: spec.entryNames, chunkNames: spec.chunkNames, outbase: root } : {}),
      ...(plugins ? { plugins } : {}),
      outdir,
      outExtension: { '.js': spec.format === 'cjs' ? '.cjs' : '.mjs' },
      write: false,
    });
    const outputs = result.outputFiles.map((file) => ({ path: resolve(file.path), contents: file.contents }));
    if (spec.wal) {
      const path = join(outdir, WAL.packages);
      const [file] = (await buildPackages(build, root, packages, path)).outputFiles;
      outputs.push({ path, contents: file.contents });
    }
    // A file with a code cache beside it: the front, or each file of the wal bundle.
    const cached = spec.front || spec.wal;
    const wanted = new Set();
    for (const file of outputs) {
      const { path } = file;
      wanted.add(path);
      const contents = spec.front ? frontImports(Buffer.from(file.contents).toString('utf8')) : file.contents;
      if (cached) wanted.add(`${path}.cache`);
      if (sameContents(path, contents)) continue;
      mkdirSync(dirname(path), { recursive: true });
      // The old cache goes first: a build stopped half-way leaves a file without one.
      if (cached) rmSync(`${path}.cache`, { force: true });
      const temp = `${path}.${process.pid}.tmp`;
      writeFileSync(temp, contents);
      renameSync(temp, path);
    }
    // Written again even when the file is unchanged: the Node that builds may not be the one that
    // wrote the cache, and V8 takes only a cache of its own.
    if (spec.front) for (const { path } of outputs) writeCodeCache(root, path);
    if (spec.wal) writeCodeCache(root, '--wal', join(outdir, WAL.entry), join(outdir, WAL.packages));
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
