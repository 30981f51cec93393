import { performance } from 'node:perf_hooks';
import type { RestoreReport } from '../domain/verify-report.js';
import { throwIfInterrupted } from '../platform/interrupts.js';
import { checkRestored } from './checks.js';
import { type RestoreDeps, seconds } from './context.js';
import { applyGlobals } from './globals.js';
import { loadArchive } from './load.js';
import { planRestoreOwnership } from './ownership.js';
import {
  findBackupToRestore,
  readArchiveToc,
  requireCompatibleTools,
  requireRequestedSchemas,
} from './preflight.js';
import { passedAll, restoreReport, settleReport } from './report.js';
import type { RestoreRequest } from './request.js';
import { fetchArchive } from './spool.js';
import { chooseTarget, inNewDatabase } from './target.js';

/**
 * Restores one backup and checks the result. `verify` restores into a scratch database that is
 * dropped afterwards whatever happened, and stores the report beside the backup; `restore`
 * creates the target (or, asked to replace one, restores beside it and swaps only once the new
 * one passed its checks).
 *
 * Everything that can be refused is refused before anything is created. A backup whose bytes do
 * not match its manifest is CorruptBackupError, and whatever this run created is dropped.
 */
export async function runRestore(request: RestoreRequest, deps: RestoreDeps): Promise<RestoreReport> {
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();

  throwIfInterrupted(deps.signal);
  const found = await findBackupToRestore(request, deps);
  const { object } = found;
  await requireCompatibleTools(found.ctx);
  const place = await chooseTarget(found.ctx);
  const toc = await readArchiveToc(found.ctx);
  await requireRequestedSchemas(found.ctx, toc);
  // Roles before the database: its objects' owners and grants name them. A verify on a scratch
  // server of its own always brings them, so that the drill proves owners and grants restore.
  const wantGlobals = request.withGlobals || (request.mode === 'verify' && deps.throwAwayServer === true);
  const globals = wantGlobals ? await applyGlobals(found.ctx, request.withGlobals) : undefined;
  const ctx = { ...found.ctx, ownership: await planRestoreOwnership(found.ctx, toc) };

  const wantedJobs = request.jobs ?? deps.policy.jobs;
  ctx.log.info('restore starting', { ...place, jobs: wantedJobs, codec: ctx.manifest.compression.codec });
  const fetched = await fetchArchive(ctx, wantedJobs);
  try {
    throwIfInterrupted(deps.signal);
    ctx.phase('restore');
    const tr = performance.now();
    return await inNewDatabase(ctx, place, async (db) => {
      const loaded = await loadArchive(ctx, place.restoreInto, fetched);
      const restoreMs = performance.now() - tr;
      ctx.log.info('restored', { restoreSeconds: seconds(restoreMs), bytesFetched: loaded.bytesFetched });

      throwIfInterrupted(deps.signal);
      ctx.phase('checks');
      const tc = performance.now();
      await deps.beforeChecks?.(place.restoreInto);
      const outcome = await checkRestored(ctx, place.restoreInto, loaded.counts);
      const checksMs = performance.now() - tc;
      // Nothing is swapped in or written after an interruption.
      throwIfInterrupted(deps.signal);

      const replaced = place.restoreInto !== place.target && passedAll(outcome.checks);
      if (replaced) await db.putInPlace();
      const report = restoreReport(ctx, place, {
        startedAt,
        finishedAt: clock(),
        fetchMs: loaded.fetchMs,
        restoreMs,
        checksMs,
        recoveryMs: performance.now() - t0,
        bytesFetched: loaded.bytesFetched,
        jobs: fetched.jobs,
        spooled: fetched.kind === 'spool',
        replaced,
        object,
        outcome,
        ...(globals ? { globals } : {}),
      });
      await settleReport(ctx, place, report);
      return report;
    });
  } finally {
    if (fetched.kind === 'spool') await fetched.spool.remove();
  }
}
