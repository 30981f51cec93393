#!/usr/bin/env node
// The `pgbp` command. Runs a bundle of the TypeScript sources, rebuilt on first use and whenever
// a source is newer: no build step to forget, and a process a fraction the size of a transpiling
// one. Each build goes to its own folder, named in `.build/current`, so concurrent runs never
// see a half-written bundle.
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
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildRoot = join(root, '.build');
const pointer = join(buildRoot, 'current');

function newest(path) {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let latest = 0;
  for (const name of readdirSync(path)) latest = Math.max(latest, newest(join(path, name)));
  return latest;
}

function currentBundle() {
  if (!existsSync(pointer)) return undefined;
  const entry = join(buildRoot, readFileSync(pointer, 'utf8').trim(), 'main.mjs');
  if (!existsSync(entry)) return undefined;
  const sources = ['cli', 'lib', 'functions', 'package-lock.json'].map((p) => newest(join(root, p)));
  return statSync(pointer).mtimeMs >= Math.max(...sources) ? entry : undefined;
}

let entry = currentBundle();
if (!entry) {
  const { bundle } = await import('./bundle.mjs');
  const name = `b-${Date.now()}-${process.pid}`;
  mkdirSync(buildRoot, { recursive: true });
  await bundle({
    entryPoints: [join(root, 'cli/main.ts')],
    outdir: join(buildRoot, name),
    splitting: true,
    sourcemap: false,
  });
  const temp = `${pointer}.${process.pid}`;
  writeFileSync(temp, name);
  renameSync(temp, pointer);
  entry = join(buildRoot, name, 'main.mjs');
  // Older builds are kept a minute for runs that may still be loading them.
  for (const old of readdirSync(buildRoot)) {
    const path = join(buildRoot, old);
    if (old.startsWith('b-') && old !== name && Date.now() - statSync(path).mtimeMs > 60_000) {
      rmSync(path, { recursive: true, force: true });
    }
  }
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
