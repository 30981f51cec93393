#!/usr/bin/env node
// The `pgbp` command: runs the CLI bundle that the install built (`npm ci` runs `prepare`, see
// cli/bundle.mjs). It reads no source and writes nothing here, so it runs from a read-only
// install as any OS user, and starts in little more than Node's own start-up.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// A wal-push or wal-fetch whose work is already done ends before the CLI loads (cli/wal-fast-path.ts).
if (/^wal-(push|fetch)$/.test(process.argv[2] ?? '')) {
  const fast = await import(pathToFileURL(join(root, 'dist', 'fast', 'wal-fast-path.mjs')).href).catch(
    () => {},
  );
  const early = await fast?.runFastPath(process.argv.slice(2), {
    cwd: process.cwd(),
    env: process.env,
    script: process.argv[1],
  });
  if (early !== undefined) process.exit(early);
}
const entry = join(root, 'dist', 'cli', 'main.mjs');
const args = process.argv.slice(2);
// `pgbp --version` is what a supervisor or a health check runs: answered from package.json,
// without loading the CLI (as long as the install is built; else the message below says so).
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V') && existsSync(entry)) {
  process.stdout.write(`${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}\n`);
  process.exit(0);
}
let cli;
try {
  cli = await import(pathToFileURL(entry).href);
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !String(error.message).includes(join(root, 'dist')))
    throw error;
  process.stderr.write(
    `pgbp: the built CLI in ${join(root, 'dist')} is missing or incomplete: run \`npm ci\` (or \`npm run build\`) in ${root}\n`,
  );
  // As a shell reports a command it cannot find: PostgreSQL, which will run pgbp for its WAL,
  // aborts recovery on a status above 125 instead of taking it as "no such file".
  process.exit(127);
}
process.exitCode = await cli.main(args);
