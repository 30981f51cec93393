#!/usr/bin/env node
// The `pgbp` command: runs the CLI that the install built (`npm ci` runs `prepare`, see
// cli/bundle.mjs). It reads no source and writes nothing here, so it runs from a read-only
// install as any OS user. CommonJS, as is the CLI's front (dist/cli/main.cjs): Node starts a
// CommonJS file with no module loader of its own, so a version, a help text or a usage error
// costs little more than Node's own start-up; a command loads its work when it runs. The wal-*
// commands that PostgreSQL's calls run (and the prefetcher a recovery waits for) load neither:
// they run from a bundle of their own (dist/wal/, see WAL in cli/bundle.mjs).
'use strict';
// Before anything else runs: the launcher's wal commands come with NODE_EXTRA_CA_CERTS renamed,
// applied at their first TLS connection (see cli/extra-ca.cjs).
let extraCa;
try {
  if (process.env.PGBP_EXTRA_CA_CERTS !== undefined) extraCa = require('./extra-ca.cjs').deferExtraCaCerts();
} catch (error) {
  // An install that lacks it cannot run (see cannotRun).
  cannotRun(error);
}
const { existsSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const dist = join(root, 'dist');
const args = process.argv.slice(2);

function unbuilt() {
  process.stderr.write(
    `pgbp: the built CLI in ${dist} is missing or incomplete: run \`npm ci\` (or \`npm run build\`) in ${root}\n`,
  );
  // As a shell reports a command it cannot find: PostgreSQL, which will run pgbp for its WAL,
  // aborts recovery on a status above 125 instead of taking it as "no such file".
  process.exit(127);
}

function versionOf(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** The fast path's answer for a wal-push or wal-fetch whose work is already done, if any. */
async function early() {
  if (!/^wal-(push|fetch)$/.test(args[0] ?? '')) return undefined;
  let fast;
  try {
    fast = require(join(dist, 'fast', 'wal-fast-path.cjs'));
  } catch {
    return undefined;
  }
  return fast.runFastPath(args, { cwd: process.cwd(), env: process.env, script: process.argv[1] });
}

/**
 * A wal-* command's status from the wal bundle (dist/wal/, see WAL in cli/bundle.mjs), or
 * undefined for the front to run the line (another command, a help text, no wal bundle built).
 */
async function wal() {
  if (!args[0]?.startsWith('wal-')) return undefined;
  const file = join(dist, 'wal', 'wal-main.cjs');
  if (!existsSync(file)) return undefined;
  const { runWalCommand } = require('./front.cjs').loadWal(file, join(dist, 'wal', 'aws-packages.cjs'));
  return runWalCommand(args, {
    env: process.env,
    cwd: process.cwd(),
    stdout: process.stdout,
    stderr: process.stderr,
  });
}

async function run() {
  const answered = await early();
  if (answered !== undefined) process.exit(answered);
  const status = await wal();
  if (status !== undefined) {
    process.exitCode = status;
    return;
  }
  // The front's work is ES modules (dist/work/), whose imports of Node's modules no hook sees: a
  // wal command run there (no wal bundle built) has the certificates applied before it loads.
  extraCa?.now();
  const entry = join(dist, 'cli', 'main.cjs');
  if (!existsSync(entry) || !existsSync(join(dist, 'work'))) unbuilt();
  // `pgbp --version` is what a supervisor or a health check runs: answered from package.json
  // where the install has it (the task image has not: the CLI answers there).
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    const version = versionOf(join(root, 'package.json'));
    if (version) {
      process.stdout.write(`${version}\n`);
      process.exit(0);
    }
  }
  process.exitCode = await require('./front.cjs').loadFront(entry).main(args);
}

/** Says why, and exits: a restore_command that could not run aborts recovery (above 125), never ends it as "not archived". */
function cannotRun(error) {
  process.stderr.write(`pgbp: ${error?.stack ?? error}\n`);
  process.exit(process.argv[2] === 'wal-fetch' ? 126 : 1);
}

run().catch(cannotRun);
