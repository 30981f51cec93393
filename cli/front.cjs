// Loads the CLI's bundles that start often with the V8 code cache that the build wrote beside each
// (`<file>.cache`): the front (dist/cli/main.cjs, see cli/bundle.mjs), and the wal-* commands'
// bundle with its AWS packages file (dist/wal/, see WAL there). Compiling them is most of what a
// help text, a usage error or the line before a command's work costs. A cache is used only for
// the file it was made from, as the file's modification time and size tell (V8 itself checks no
// more than the source's length): a file rebuilt, edited or copied without its times compiles as
// usual, as it does when V8 refuses the cache (another Node, other flags).
//
// The front imports its work with `__pgbpImport(…)` (the build rewrites its `import(…)` so):
// code compiled by node:vm cannot call import() itself, so this module does it for the front.
// The wal bundle asks for its AWS packages with `__pgbpPackage(name)`.
// Run as a script (`node cli/front.cjs FRONT`, `node cli/front.cjs --wal WAL PACKAGES`), it
// writes the caches: the build does that.
'use strict';
const {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} = require('node:fs');
const { createRequire } = require('node:module');
const { tmpdir } = require('node:os');
const { dirname, join, resolve } = require('node:path');
const { pathToFileURL } = require('node:url');
const { Script } = require('node:vm');

/** What the cache's first 16 bytes hold: the file's modification time and size. */
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

/** Runs CommonJS file `file` as require would, with its cache, and `extra` as more parameters. */
function loadCached(file, extra = {}) {
  const cachedData = cacheOf(file);
  const source = readFileSync(file, 'utf8');
  const names = Object.keys(extra);
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname${names.map((n) => `, ${n}`).join('')}) {${source}\n})`,
    { filename: file, ...(cachedData ? { cachedData } : {}) },
  );
  const module = { exports: {} };
  script
    .runInThisContext()
    .call(
      module.exports,
      module.exports,
      createRequire(file),
      module,
      file,
      dirname(file),
      ...Object.values(extra),
    );
  return {
    exports: module.exports,
    script,
    cacheRejected: cachedData ? script.cachedDataRejected : undefined,
  };
}

function loadFront(file) {
  const dir = dirname(file);
  const importWork = (specifier) => import(pathToFileURL(resolve(dir, specifier)).href);
  const { exports, script, cacheRejected } = loadCached(file, { __pgbpImport: importWork });
  return { main: exports.main, script, cacheRejected };
}

/**
 * The wal-* commands' bundle `file` (its `runWalCommand`), its AWS packages loaded from `packages`
 * when a module first asks for one.
 */
function loadWal(file, packages) {
  let loaded;
  const packagesFile = () => (loaded ??= loadCached(packages));
  const { exports, script, cacheRejected } = loadCached(file, {
    __pgbpPackage: (name) => packagesFile().exports[name](),
  });
  return {
    runWalCommand: exports.runWalCommand,
    script,
    cacheRejected,
    packages: () => loaded,
  };
}

function writeCacheOf(file, script) {
  const temp = `${file}.cache.${process.pid}.tmp`;
  writeFileSync(temp, Buffer.concat([stamp(file), script.createCachedData()]));
  renameSync(temp, `${file}.cache`);
}

/** Compiles the front, runs what a start runs (every command's help), and writes its code cache. */
async function writeCache(file) {
  const { main, script } = loadFront(file);
  const sink = { write: () => true };
  const deps = { env: {}, cwd: dirname(file), stdout: sink, stderr: sink };
  await main(['--help'], deps);
  await main(['status', '--help'], deps);
  writeCacheOf(file, script);
}

/**
 * An S3 endpoint on loopback that holds nothing: each listing is empty, each object missing.
 * What the wal bundle runs against it compiles the S3 client's requests and answers.
 */
async function emptyS3() {
  const { createServer } = require('node:http');
  const server = createServer((request, response) => {
    request.resume();
    if (request.method === 'GET' && /[?&]list-type=2/.test(request.url ?? '')) {
      response.writeHead(200, { 'content-type': 'application/xml' });
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>pgbp</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
      );
      return;
    }
    response.writeHead(404, { 'content-type': 'application/xml' });
    response.end(
      request.method === 'HEAD'
        ? undefined
        : '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>',
    );
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/**
 * Compiles the wal bundle and its packages file, runs what a recovery's first calls run (the
 * prefetcher's start and a history file's lookup, against an empty directory store and an empty
 * S3 endpoint of its own), and writes both code caches.
 */
async function writeWalCaches(file, packages) {
  const wal = loadWal(file, packages);
  const dir = mkdtempSync(join(tmpdir(), 'pgbp-cache-'));
  const s3 = await emptyS3();
  try {
    // The S3 client reads its endpoint and credentials from the environment: these only, so that
    // nothing of the building user's AWS settings is read.
    for (const key of Object.keys(process.env)) if (key.startsWith('AWS_')) delete process.env[key];
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: s3.url,
      AWS_ACCESS_KEY_ID: 'pgbp-build',
      AWS_SECRET_ACCESS_KEY: 'pgbp-build',
      AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: join(dir, 'none'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    });
    mkdirSync(join(dir, 'store'));
    mkdirSync(join(dir, 'pg_wal'));
    const sink = { write: () => true };
    const deps = { env: process.env, cwd: dir, stdout: sink, stderr: sink };
    for (const store of [`file://${join(dir, 'store')}`, 's3://pgbp/wal']) {
      await wal.runWalCommand(['wal-prefetch', '000000010000000000000001', '--store', store], deps);
      await wal.runWalCommand(
        ['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY', '--store', store],
        deps,
      );
    }
  } finally {
    s3.close();
    rmSync(dir, { recursive: true, force: true });
  }
  writeCacheOf(file, wal.script);
  const loaded = wal.packages();
  if (!loaded) throw new Error(`the wal bundle ${file} loaded none of its AWS packages for an S3 store`);
  writeCacheOf(packages, loaded.script);
}

module.exports = { loadFront, loadWal };

if (require.main === module) {
  const [first, ...rest] = process.argv.slice(2);
  const written = first === '--wal' ? writeWalCaches(rest[0], rest[1]) : writeCache(first);
  written.catch((error) => {
    process.stderr.write(
      `pgbp: could not write the code cache of ${first === '--wal' ? rest[0] : first}: ${error?.stack ?? error}\n`,
    );
    process.exit(1);
  });
}
