#!/usr/bin/env node
// The `pgbp` command. Runs a bundle of the TypeScript sources, rebuilt on first use and whenever
// a source is newer: no build step to forget, and a process a fraction the size of a transpiling
// one.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freshBundle } from './bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = await freshBundle({
  root,
  name: 'cli',
  entryPoints: ['cli/main.ts'],
  sources: ['cli', 'lib', 'functions', 'package.json', 'package-lock.json'],
  splitting: true,
});
const { main } = await import(pathToFileURL(join(dir, 'main.mjs')).href);
process.exitCode = await main(process.argv.slice(2));
