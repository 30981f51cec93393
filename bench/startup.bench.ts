/**
 * Start-up cost of pgbp, which PostgreSQL will start once per WAL segment: a bare `node -e 0`
 * against `pgbp --version` and a no-op command, `pgbp status --help` (the CLI's front: commander
 * and the command declarations, dist/cli/main.cjs; a command loads its work, the config schema,
 * YAML and stores, only when it runs), each run as the package's bin, by its #! line, as a user
 * or PostgreSQL runs it,
 * BENCH_ROUNDS times (default 40), interleaved so that load on the machine falls on all
 * of them alike, and the median taken. Target: both at most 1.2× node. For the record, not as a
 * target: the smallest command that does load all that, `pgbp list` of an empty directory store
 * (config, schema, store, catalog; it finds nothing).
 *
 * Then the same two commands from a copy of the install holding BENCH_EXTRA_SOURCES (default
 * 2,000) extra source files under lib/ and cli/, interleaved with the original: start-up reads
 * no source, so the ratio stays near 1. The copy has no node_modules, so it also shows that the
 * built CLI needs nothing but dist/ at run time. Prints one JSON line; `npm run bench:startup`
 * builds dist/ first.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const EXTRA_SOURCES = Number(process.env.BENCH_EXTRA_SOURCES ?? 2000);
const TARGET_RATIO = 1.2;
const NOOP = ['status', '--help'];

/** A command line: the program, then its arguments. */
type Run = readonly [string, ...string[]];

function timeOnce([program, ...args]: Run, cwd: string): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(program, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) {
    throw new Error(`${program} ${args.join(' ')} exited ${r.status}: ${r.stderr.toString().trim()}`);
  }
  return ms;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Medians of each run, interleaved: every round runs each once, in an order rotated per round. */
function interleaved<K extends string>(
  runs: Record<K, { args: Run; cwd: string }>,
  rounds: number,
): Record<K, number> {
  const entries = Object.entries(runs) as [K, { args: Run; cwd: string }][];
  const times = entries.map(() => [] as number[]);
  for (const [, run] of entries) timeOnce(run.args, run.cwd); // warm the page cache
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < entries.length; i++) {
      const at = (round + i) % entries.length;
      const [, run] = entries[at] as [K, { args: Run; cwd: string }];
      times[at]?.push(timeOnce(run.args, run.cwd));
    }
  }
  return Object.fromEntries(entries.map(([name], i) => [name, median(times[i] ?? [])])) as Record<K, number>;
}

/** A copy of the install (what `npm ci` leaves, less node_modules) with `count` more source files. */
function copyWithExtraSources(count: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgbp-bench-startup-'));
  for (const part of [
    'package.json',
    'cli',
    'lib',
    'functions',
    'tasks',
    'statemachines',
    'config',
    'dist',
  ]) {
    // Times kept, as an install keeps them: the front's code cache is made for its own file.
    cpSync(join(ROOT, part), join(dir, part), { recursive: true, preserveTimestamps: true });
  }
  for (let i = 0; i < count; i++) {
    const folder = join(dir, i % 2 ? 'lib' : 'cli', 'extra', String(i % 50));
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `extra-${i}.ts`), `export const extra${i} = ${i};\n`);
  }
  return dir;
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round3 = (n: number) => Math.round(n * 1000) / 1000;

// The `pgbp` command as an install puts it on the PATH: the package's bin, run by its #! line.
const BIN = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: { pgbp: string } }).bin
  .pgbp;
const pgbp = join(ROOT, BIN);
const emptyStore = mkdtempSync(join(tmpdir(), 'pgbp-bench-startup-store-'));
let base: Record<'node' | 'version' | 'noop' | 'list', number>;
try {
  base = interleaved(
    {
      node: { args: [process.execPath, '-e', '0'], cwd: ROOT },
      version: { args: [pgbp, '--version'], cwd: ROOT },
      noop: { args: [pgbp, ...NOOP], cwd: ROOT },
      list: { args: [pgbp, 'list', '--store', `file://${emptyStore}`, '--json'], cwd: emptyStore },
    },
    ROUNDS,
  );
} finally {
  rmSync(emptyStore, { recursive: true, force: true });
}

const copy = copyWithExtraSources(EXTRA_SOURCES);
let growth: Record<'version' | 'versionExtra' | 'noop' | 'noopExtra', number>;
try {
  const copied = join(copy, BIN);
  growth = interleaved(
    {
      version: { args: [pgbp, '--version'], cwd: ROOT },
      versionExtra: { args: [copied, '--version'], cwd: copy },
      noop: { args: [pgbp, ...NOOP], cwd: ROOT },
      noopExtra: { args: [copied, ...NOOP], cwd: copy },
    },
    Math.max(5, Math.floor(ROUNDS / 2)),
  );
} finally {
  rmSync(copy, { recursive: true, force: true });
}

const versionRatio = base.version / base.node;
const noopRatio = base.noop / base.node;
const ok = versionRatio <= TARGET_RATIO && noopRatio <= TARGET_RATIO;
process.stdout.write(
  `${JSON.stringify({
    bench: 'startup',
    node: process.version,
    rounds: ROUNDS,
    nodeMs: round1(base.node),
    versionMs: round1(base.version),
    noop: `pgbp ${NOOP.join(' ')}`,
    noopMs: round1(base.noop),
    versionRatio: round3(versionRatio),
    noopRatio: round3(noopRatio),
    targetRatio: TARGET_RATIO,
    listMs: round1(base.list),
    listRatio: round3(base.list / base.node),
    extraSources: EXTRA_SOURCES,
    versionGrowth: round3(growth.versionExtra / growth.version),
    noopGrowth: round3(growth.noopExtra / growth.noop),
    ok,
  })}\n`,
);
if (!ok) process.exitCode = 1;
