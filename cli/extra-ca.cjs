// NODE_EXTRA_CA_CERTS, applied at a wal command's first TLS connection instead of at its start.
// Node 20 reads the file at start-up, before any code runs, into the store of trusted roots that
// it builds then too: on this project's machines (the variable names the system's bundle of 144
// certificates) that is 51 ms of the 83 ms that `node -e 0` takes, paid by every wal command
// that Node runs, the prefetcher whose start a recovery waits for among them, and used by none
// that never opens a TLS connection (a directory store, an S3 endpoint over http).
//
// So the launcher (cli/pgbp) starts a wal command's Node with the variable renamed,
// PGBP_EXTRA_CA_CERTS, and cli/pgbp.cjs calls deferExtraCaCerts before anything else runs:
// the variable is given back its name in process.env (every child sees the environment the
// user set; cli/wal-line.ts renames it again for the wal commands it starts), and the
// certificates are added where Node would have used them, as Node's own rule has it: to every
// secure context made without a `ca` of its caller's ("neither the well known nor extra
// certificates are used when the ca option is explicitly specified"). A context gets them through
// the same call Node makes for an explicit `ca` (addCACert, which gives the context a store of
// its own: the default roots and these), after the default roots that the context was built with,
// whichever roots those are (bundled, OpenSSL's with --use-openssl-ca).
//
// Every TLS connection of Node 20 gets its context from the `tls` module's createSecureContext,
// looked up when it connects (tls.connect, the TLSSocket constructor; https, http2 and fetch's
// undici through them), so replacing it there covers them all, once `tls` is loaded: its first
// load is a few milliseconds that a process without TLS should not pay, so the replacement is
// made when code of the process first loads a module that connects (`tls`, `https`, `http2`) or
// first calls fetch (Node loads undici, which loads `tls`, inside it).
//
// Reading and adding the certificates costs a context about 25-40 ms here: a connection that
// tls.connect makes with the default settings (what the AWS SDK's agents and fetch make) gets one
// context built once per process and shared, as Node shares its root store (tls.connect only
// hands a context to the connection); any other (a caller's own createSecureContext, a client
// certificate, other ciphers) is built for its caller, as Node builds it.
'use strict';

/** The modules whose loading means that TLS connections may follow. */
const CONNECTING = new Set(['tls', 'https', 'http2', '_tls_wrap', '_tls_common']);

/**
 * The options of Node 20's createSecureContext (lib/_tls_common.js and
 * lib/internal/tls/secure-context.js) whose values are objects a context is built from: with
 * any of them, the context is its caller's own.
 */
const OWN_CONTEXT = [
  'cert',
  'key',
  'pfx',
  'passphrase',
  'crl',
  'dhparam',
  'ticketKeys',
  'privateKeyIdentifier',
  'privateKeyEngine',
  'clientCertEngine',
];

/** Its settings that are plain values: a context shared by connections is one per combination. */
const SETTINGS = [
  'secureProtocol',
  'secureOptions',
  'honorCipherOrder',
  'minVersion',
  'maxVersion',
  'ciphers',
  'ecdhCurve',
  'sigalgs',
  'sessionIdContext',
  'sessionTimeout',
  'allowPartialTrustChain',
];

/** Replaces tls.createSecureContext so that a context made without `ca` trusts the certificates of `file`. */
function trustIn(tls, file, warn) {
  const original = tls.createSecureContext;
  const originalConnect = tls.connect;
  let pem;
  const extra = () => {
    if (pem === undefined) {
      try {
        pem = require('node:fs').readFileSync(file, 'utf8');
      } catch (error) {
        // What Node prints when it cannot load them at start-up; it goes on without them.
        warn(`Warning: Ignoring extra certs from \`${file}\`, load failed: ${error.message}\n`);
        pem = '';
      }
    }
    return pem;
  };
  const withExtra = (options) => {
    const context = original(options);
    if (extra()) context.context.addCACert(extra());
    return context;
  };
  const shared = new Map();
  // The options checked are Node 20's: another Node's may be more.
  const sharing = process.versions.node.split('.')[0] === '20';
  let connecting = false;
  tls.createSecureContext = function createSecureContext(options) {
    if (options?.ca) return original(options);
    if (!connecting || !sharing || OWN_CONTEXT.some((key) => options?.[key] != null))
      return withExtra(options);
    const key = JSON.stringify([
      ...SETTINGS.map((name) => options?.[name] ?? null),
      tls.DEFAULT_MIN_VERSION,
      tls.DEFAULT_MAX_VERSION,
      tls.DEFAULT_ECDH_CURVE,
      tls.DEFAULT_CIPHERS,
    ]);
    let context = shared.get(key);
    // A context closed by its connection (Node 20 closes none it shares) is made again.
    if (!context?.context) {
      context = withExtra(options);
      shared.set(key, context);
    }
    return context;
  };
  // tls.connect hands the context it makes to the connection alone: only there may one be shared.
  tls.connect = function connect(...args) {
    connecting = true;
    try {
      return originalConnect.apply(this, args);
    } finally {
      connecting = false;
    }
  };
}

/**
 * Applies PGBP_EXTRA_CA_CERTS (the launcher's name for NODE_EXTRA_CA_CERTS) as described above,
 * and gives NODE_EXTRA_CA_CERTS back to `env` (process.env). Where NODE_EXTRA_CA_CERTS is set
 * too, Node has loaded that one already, and this does nothing more. Returns `now()`, which
 * applies them at once: for code that loads Node's modules by ES `import`, which no hook sees.
 */
function deferExtraCaCerts(env = process.env, warn = (text) => process.stderr.write(text)) {
  const file = env.PGBP_EXTRA_CA_CERTS;
  delete env.PGBP_EXTRA_CA_CERTS;
  if (env.NODE_EXTRA_CA_CERTS !== undefined || !file) return { now: () => {} };
  env.NODE_EXTRA_CA_CERTS = file;
  let done = false;
  const apply = () => {
    if (done) return;
    done = true;
    trustIn(require('node:tls'), file, warn);
  };
  const Module = require('node:module');
  const load = Module._load;
  Module._load = function _load(request, ...rest) {
    if (!done && CONNECTING.has(request.startsWith('node:') ? request.slice(5) : request)) apply();
    return load.call(this, request, ...rest);
  };
  const fetch = globalThis.fetch;
  if (typeof fetch === 'function') {
    globalThis.fetch = function fetchWithExtraCa(...args) {
      apply();
      return fetch.apply(this, args);
    };
  }
  return { now: apply };
}

module.exports = { deferExtraCaCerts };
