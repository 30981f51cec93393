/**
 * Restore benchmark (`npm run bench:restore`): one JSON line. On the capture benchmark's database
 * it makes one backup in the file store, then times in one run, interleaved over BENCH_ROUNDS
 * rounds (best of each, since this machine is shared):
 *   a) plain pg_restore of the same dump from a local file, one job, the way the README tells
 *      a user to do it without this project (`zstd -dc dump | pg_restore -d new`);
 *   b) plain pg_restore, one job, of the dump already decompressed to a local file: the
 *      fastest a single-job pg_restore gets, with no decompression at all;
 *   c) pgbp verify, one job: fetch from the file store, SHA-256, zstd -d, pg_restore, checks;
 *   d) pgbp verify with --jobs 2: spooled to local disk, digest checked, then pg_restore -j 2;
 *   g) pgbp verify, one job, at content depth: c, and every table read back and digested
 *      against its data in the archive; its extra cost over c is reported per GB of archive.
 *   h) pgbp verify, one job, of the same database backed up encrypted under a key file: c with
 *      each frame decrypted and authenticated on the way, against c.
 * Every verify counts each table's rows in the archive as it reads it (the row check).
 * Plain runs include creating the database; verify runs are measured by their own recovery
 * time (request to checks done), which also includes finding the backup and the checks.
 *
 * pg_restore --jobs restores several tables at once, never one table in parts, and nearly all of
 * the main database is one table; so a and d are also run on a database of the same rows spread
 * over four tables (e, f: `multi_*`), where parallel restore has something to share out.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compressionFromConfig, runDump } from '../lib/backup/dump.js';
import { parseConfig } from '../lib/config.js';
import { type RestoreReport, rowsRestored } from '../lib/domain/verify-report.js';
import { silentLogger } from '../lib/platform/logger.js';
import { resolveConnection } from '../lib/postgres/pg-tools.js';
import { parseRestoreRequest } from '../lib/restore/request.js';
import { runRestore } from '../lib/restore/restore.js';
import { FileStore } from '../lib/storage/file-store.js';
import { withEncryption } from '../lib/storage/open-store.js';
import type { BackupStore } from '../lib/storage/store.js';
import { BENCH_DB, ensureBenchDatabase } from './support/bench-db.js';
import { ensureMultiTableDatabase } from './support/bench-multi-db.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 1);
const round3 = (n: number) => Math.round(n * 1000) / 1000;

function sh(command: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('bash', ['-o', 'pipefail', '-c', command], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`${command} failed (${code}): ${stderr.slice(-500)}`));
      else resolve(Number(process.hrtime.bigint() - started) / 1e9);
    });
  });
}

async function main(): Promise<void> {
  const bench = await ensureBenchDatabase();
  const multi = await ensureMultiTableDatabase();
  const config = parseConfig({ stage: 'local', store: 'file:///unused' }, 'bench');
  const connection = resolveConnection(config, process.env, bench.database);
  const work = mkdtempSync(join(tmpdir(), 'pgbp-bench-restore-'));
  const store = new FileStore(join(work, 'nas'));
  const plainDb = `pgbp_benchr_plain_${process.pid}`;
  const flags = '--no-owner --no-privileges --exit-on-error';
  const keyFile = join(work, 'stage.key');
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  const encrypted = await withEncryption(
    new FileStore(join(work, 'encrypted')),
    { keyFile, required: true },
    'local',
  );
  const backup = (database: string, into: BackupStore = store) =>
    runDump(
      {
        database,
        connection: { ...connection, database },
        store: into,
        compression: compressionFromConfig(config),
        storageClass: 'STANDARD',
      },
      { env: process.env, logger: silentLogger },
    );
  try {
    const manifest = await backup(bench.database);
    const multiManifest = await backup(multi.database);
    const encryptedManifest = await backup(bench.database, encrypted);
    const dumpFile = join(work, 'nas', manifest.key);
    const multiFile = join(work, 'nas', multiManifest.key);
    const rawFile = join(work, 'decompressed.dump');
    await sh(`zstd -dc -q '${dumpFile}' > '${rawFile}'`);

    const deps = {
      store,
      connection,
      policy: config.defaults.restore,
      assertions: [],
      env: process.env,
      logger: silentLogger,
    };
    const verify = (
      jobs: number,
      database = bench.database,
      id = manifest.id,
      depth = 'rows',
      from: BackupStore = store,
    ) =>
      runRestore(parseRestoreRequest({ mode: 'verify', database, backup: id, jobs, depth }), {
        ...deps,
        store: from,
      });
    const plain = async (restore: string) => {
      try {
        return await sh(`createdb -T template0 ${plainDb} && ${restore}`);
      } finally {
        await sh(`dropdb --if-exists --force ${plainDb}`);
      }
    };

    const best = {
      a: Infinity,
      b: Infinity,
      c: Infinity,
      d: Infinity,
      e: Infinity,
      f: Infinity,
      g: Infinity,
      h: Infinity,
    };
    let c: RestoreReport | undefined;
    let h: RestoreReport | undefined;
    let g: RestoreReport | undefined;
    let d: RestoreReport | undefined;
    let f: RestoreReport | undefined;
    for (let round = 0; round < rounds; round += 1) {
      best.a = Math.min(best.a, await plain(`zstd -dc -q '${dumpFile}' | pg_restore ${flags} -d ${plainDb}`));
      const one = await verify(1);
      if (!c || one.recoverySeconds < c.recoverySeconds) c = one;
      best.b = Math.min(best.b, await plain(`pg_restore ${flags} -d ${plainDb} '${rawFile}'`));
      const two = await verify(2);
      if (!d || two.recoverySeconds < d.recoverySeconds) d = two;
      best.e = Math.min(
        best.e,
        await plain(`zstd -dc -q '${multiFile}' | pg_restore ${flags} -d ${plainDb}`),
      );
      const multiTwo = await verify(2, multi.database, multiManifest.id);
      if (!f || multiTwo.recoverySeconds < f.recoverySeconds) f = multiTwo;
      const sealed = await verify(1, bench.database, encryptedManifest.id, 'rows', encrypted);
      if (!h || sealed.recoverySeconds < h.recoverySeconds) h = sealed;
      const content = await verify(1, bench.database, manifest.id, 'content');
      if (!g || content.recoverySeconds < g.recoverySeconds) g = content;
    }
    if (!c || !d || !f || !g || !h) throw new Error('no rounds ran');
    best.h = h.recoverySeconds;
    best.g = g.recoverySeconds;
    best.c = c.recoverySeconds;
    best.d = d.recoverySeconds;
    best.f = f.recoverySeconds;

    const result = {
      bench: 'restore',
      database: BENCH_DB,
      databaseBytes: bench.sizeBytes,
      backupBytes: manifest.sizeBytes,
      decompressedBytes: statSync(rawFile).size,
      rounds,
      a_plain_pgrestore_zstd_pipe_s: round3(best.a),
      b_plain_pgrestore_decompressed_file_s: round3(best.b),
      c_verify_rto_s: round3(best.c),
      c_timings: c.timings,
      d_verify_jobs2_rto_s: round3(best.d),
      d_timings: d.timings,
      d_spooled: d.spooled,
      c_over_a: round3(best.c / best.a),
      c_over_b: round3(best.c / best.b),
      d_over_a: round3(best.d / best.a),
      d_over_b: round3(best.d / best.b),
      tables: c.tables.length,
      rows: rowsRestored(c),
      multi_database_bytes: multi.sizeBytes,
      multi_tables: f.tables.length,
      e_multi_plain_pgrestore_zstd_pipe_s: round3(best.e),
      f_multi_verify_jobs2_rto_s: round3(best.f),
      f_timings: f.timings,
      f_over_e: round3(best.f / best.e),
      g_verify_content_rto_s: round3(best.g),
      g_timings: g.timings,
      // The archive side digests while the restore reads it, the restored side in the checks.
      g_content_extra_s_per_gb: round3((best.g - best.c) / (statSync(rawFile).size / 1e9)),
      g_content_checks_extra_s_per_gb: round3(
        (g.timings.checksSeconds - c.timings.checksSeconds) / (statSync(rawFile).size / 1e9),
      ),
      g_over_c: round3(best.g / best.c),
      h_verify_encrypted_rto_s: round3(best.h),
      h_timings: h.timings,
      h_backup_bytes: encryptedManifest.sizeBytes,
      h_over_c: round3(best.h / best.c),
      checks_passed: c.passed && d.passed && f.passed && g.passed && h.passed,
      targets: {
        verify_at_most_1_15x_plain: best.c <= 1.15 * best.a,
        verify_at_most_1_15x_plain_decompressed: best.c <= 1.15 * best.b,
        jobs2_beats_single_job_plain: best.d < best.a,
        jobs2_beats_single_job_plain_decompressed: best.d < best.b,
        multi_jobs2_beats_single_job_plain: best.f < best.e,
        encrypted_verify_at_most_1_15x_verify: best.h <= 1.15 * best.c,
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await sh(`dropdb --if-exists --force ${plainDb}`).catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
