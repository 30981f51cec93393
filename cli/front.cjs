// Loads the CLI's front (dist/cli/main.cjs, see cli/bundle.mjs) with the V8 code cache that the
// build wrote beside it (main.cjs.cache): compiling the front is most of what a help text, a
// usage error or the line before a command's work costs. The cache is used only for the front
// it was made from, as the file's modification time and size tell (V8 itself checks no more
// than the source's length): a front rebuilt, edited or copied without its times compiles as
// usual, as it does when V8 refuses the cache (another Node, other flags).
//
// The front imports its work with `__pgbpImport(…)` (the build rewrites its `import(…)` so):
// code compiled by node:vm cannot call import() itself, so this module does it for the front.
// Run as a script (`node cli/front.cjs FRONT`), it writes the cache: the build does that.
'use strict';
const { readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, resolve } = require('node:path');
const { pathToFileURL } = require('node:url');
const { Script } = require('node:vm');

/** What the cache's first 16 bytes hold: the front's modification time and size. */
function stamp(file) {
  const { mtimeMs, size } = statSync(file);
  const header = Buffer.alloc(16);
  // Whole seconds: what every copy that keeps times keeps (cp -p, Docker's COPY, fs.cpSync).
  header.writeDoubleLE(Math.floor(mtimeMs / 1000), 0);
  header.writeDoubleLE(size, 8);
  return header;
}

function cacheOf(file) {
  try {
    const cache = readFileSync(`${file}.cache`);
    return cache.length > 16 && cache.subarray(0, 16).equals(stamp(file)) ? cache.subarray(16) : undefined;
  } catch {
    return undefined;
  }
}

function loadFront(file) {
  const cachedData = cacheOf(file);
  const source = readFileSync(file, 'utf8');
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname, __pgbpImport) {${source}\n})`,
    { filename: file, ...(cachedData ? { cachedData } : {}) },
  );
  const dir = dirname(file);
  const module = { exports: {} };
  const importWork = (specifier) => import(pathToFileURL(resolve(dir, specifier)).href);
  script
    .runInThisContext()
    .call(module.exports, module.exports, createRequire(file), module, file, dir, importWork);
  return {
    main: module.exports.main,
    script,
    cacheRejected: cachedData ? script.cachedDataRejected : undefined,
  };
}

/** Compiles the front, runs what a start runs (every command's help), and writes its code cache. */
async function writeCache(file) {
  const { main, script } = loadFront(file);
  const sink = { write: () => true };
  const deps = { env: {}, cwd: dirname(file), stdout: sink, stderr: sink };
  await main(['--help'], deps);
  await main(['status', '--help'], deps);
  const temp = `${file}.cache.${process.pid}.tmp`;
  writeFileSync(temp, Buffer.concat([stamp(file), script.createCachedData()]));
  renameSync(temp, `${file}.cache`);
}

module.exports = { loadFront };

if (require.main === module) {
  writeCache(process.argv[2]).catch((error) => {
    process.stderr.write(
      `pgbp: could not write the code cache of ${process.argv[2]}: ${error?.stack ?? error}\n`,
    );
    process.exit(1);
  });
}
