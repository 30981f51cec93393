/**
 * Retention benchmark (`npm run bench:retention`): one JSON line.
 *  - planning: planRetention over 100,000 backups spread over 30 years (several a day, as a
 *    busy database with manual backups would have), cold (the first call) and the median of
 *    the next runs; the limit is 200 ms.
 *  - bundles: each Lambda handler in functions/ bundled as deployed (esbuild, minified, ESM,
 *    platform node, target node20, @aws-sdk/* external); the limit is 1 MiB each.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { backupIdFor, classifyTier } from '../lib/domain/backup-layout.js';
import { planRetention, type RetainableBackup } from '../lib/domain/retention.js';

const BACKUPS = 100_000;
const RUNS = 7;
const PLAN_LIMIT_MS = 200;
const BUNDLE_LIMIT_BYTES = 1024 * 1024;
const root = resolve(import.meta.dirname, '..');

/** A deterministic catalog: the same on every run, so results compare across runs. */
function catalog(count: number): { backups: RetainableBackup[]; now: Date } {
  // mulberry32: small, fast, and exact in 32-bit integer arithmetic.
  let seed = 42;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const start = Date.UTC(1996, 0, 1);
  const span = 30 * 365 * 86_400;
  const seconds = new Set<number>();
  while (seconds.size < count) seconds.add(Math.floor(random() * span));
  const backups = [...seconds].map((s) => {
    const createdAt = new Date(start + s * 1000);
    return { id: backupIdFor('bench', createdAt), createdAt, tier: classifyTier(createdAt) };
  });
  const newest = backups.reduce((m, b) => Math.max(m, b.createdAt.getTime()), 0);
  return { backups, now: new Date(newest + 3_600_000) };
}

function timePlanning(): { coldMs: number; medianMs: number; kept: number } {
  const { backups, now } = catalog(BACKUPS);
  const rules = { daily: 7, monthly: 12, yearly: 7, minKeep: 3, debrisGrace: 86_400_000 };
  const times: number[] = [];
  let kept = 0;
  for (let i = 0; i <= RUNS; i += 1) {
    const started = performance.now();
    const plan = planRetention({ now, rules, staleAfter: 86_400_000, backups });
    times.push(performance.now() - started);
    kept = plan.keep.length;
  }
  const [cold = 0, ...warm] = times;
  warm.sort((a, b) => a - b);
  return { coldMs: round(cold), medianMs: round(warm[warm.length >> 1] ?? 0), kept };
}

/** The handlers: every functions/*.ts that exports `handler`. */
function handlers(): string[] {
  const dir = join(root, 'functions');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .filter((f) =>
      /export const handler\b|export \{[^}]*\bhandler\b/.test(readFileSync(join(dir, f), 'utf8')),
    )
    .sort();
}

async function bundleSizes(): Promise<Record<string, number>> {
  const sizes: Record<string, number> = {};
  for (const file of handlers()) {
    const out = await build({
      entryPoints: [join(root, 'functions', file)],
      bundle: true,
      minify: true,
      write: false,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      external: ['@aws-sdk/*'],
      logLevel: 'silent',
    });
    sizes[file.replace(/\.ts$/, '')] = out.outputFiles.reduce((n, f) => n + f.contents.length, 0);
  }
  return sizes;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

const planning = timePlanning();
const bundles = await bundleSizes();
const largest = Math.max(...Object.values(bundles));
const ok = planning.coldMs < PLAN_LIMIT_MS && largest < BUNDLE_LIMIT_BYTES;
process.stdout.write(
  `${JSON.stringify({
    bench: 'retention',
    backups: BACKUPS,
    planColdMs: planning.coldMs,
    planMedianMs: planning.medianMs,
    planLimitMs: PLAN_LIMIT_MS,
    kept: planning.kept,
    bundleBytes: bundles,
    largestBundleBytes: largest,
    bundleLimitBytes: BUNDLE_LIMIT_BYTES,
    ok,
  })}\n`,
);
if (!ok) process.exitCode = 1;
