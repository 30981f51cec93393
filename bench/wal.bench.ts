/**
 * WAL archive benchmark (`npm run bench:wal`): one JSON line, every ratio measured in one run.
 *
 * Push under a burst: `pgbench -i -s BENCH_WAL_SCALE` (50 by default: about 700 MB of WAL) on a
 * fresh cluster archiving with `cp %p DIR/%f`, then on another archiving with pgbp wal-push to a
 * directory store. Reported: the load's duration with each (the ratio is what archiving costs
 * the load) and how long after the load's end the archive was caught up (the last segment the
 * load wrote, switched out at its end, archived).
 *
 * Replay: a base backup (pg_basebackup -X none) taken before pgbp's load is recovered to the end
 * of the archive three times: `restore_command = 'cp DIR/%f %p'` from the same WAL decompressed
 * into a plain directory, pgbp wal-fetch from the directory store, and from S3 (moto). Recovery
 * time is from the server's start to the end of recovery.
 *
 * Every cluster here runs with `fsync = on`, as production does (the tests' scratch clusters turn
 * it off for speed): a server that fsyncs pays for its WAL flushes, restartpoints and the
 * end-of-recovery checkpoint, and that is what the issue's own reference measurement (pgBackRest
 * 2.45, ~250 ms per segment) saw. The same three replays with `fsync = off` are reported too, as
 * `replayFsyncOff` (they add a few seconds): without the disk's cost, they show what restore_command
 * itself adds per segment.
 *
 * `nodeStarts` counts, per pgbp replay, the calls of restore_command that started Node (the
 * launcher, cli/pgbp, answers the others itself) and the prefetchers started: a count, not a
 * time, so it does not depend on how loaded the machine is.
 *
 * Also: stored bytes per segment, and the peak RSS of one push and one fetch.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, cpSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseWalObjectKey } from '../lib/domain/physical-layout.js';
import { FileStore } from '../lib/storage/file-store.js';
import { plainBaseBackup, startArchivingCluster } from '../test/support/archiving-cluster.js';
import { PGBP, PGBP_LAUNCHER } from '../test/support/cli.js';
import {
  pgBin,
  postgresDir,
  postgresIds,
  type ScratchCluster,
  scratchRoot,
  startCluster,
  writeSettings,
} from '../test/support/scratch-cluster.js';
import { pgbpCommand, shellQuote } from '../test/support/wal.js';
import { startMoto } from './support/moto.js';

const scale = Number(process.env.BENCH_WAL_SCALE ?? 50);
const round3 = (n: number) => Math.round(n * 1000) / 1000;
const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;

async function until(what: string, check: () => boolean, ms = 1_800_000, pollMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

function pgbenchInit(cluster: ScratchCluster): number {
  const started = process.hrtime.bigint();
  const r = spawnSync('pgbench', ['-i', '-s', String(scale), '-q', 'postgres'], {
    env: cluster.env(),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`pgbench -i failed: ${r.stderr}`);
  return seconds(started);
}

interface BurstResult {
  readonly loadSeconds: number;
  readonly catchUpSeconds: number;
  readonly segments: number;
}

/** The load, then how long until the archive holds everything it wrote. */
async function burst(cluster: ScratchCluster, beforeLoad?: () => void): Promise<BurstResult> {
  beforeLoad?.();
  const first = cluster.sql('select pg_walfile_name(pg_current_wal_lsn())');
  const loadSeconds = pgbenchInit(cluster);
  const ended = process.hrtime.bigint();
  const last = cluster.sql('select pg_walfile_name(pg_switch_wal())');
  await until('the archive to catch up', () => {
    const archived = cluster.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
    return archived.slice(0, 24) >= last;
  });
  const catchUpSeconds = seconds(ended);
  const failed = Number(cluster.sql('select failed_count from pg_stat_archiver'));
  if (failed > 0) throw new Error(`the archiver failed ${failed} times`);
  const segments = Number.parseInt(last.slice(16), 16) - Number.parseInt(first.slice(16), 16) + 1;
  return { loadSeconds, catchUpSeconds, segments };
}

/** Recovers a copy of `backup` with `restoreCommand` to the end of the archive; seconds. */
async function replay(backup: string, name: string, restoreCommand: string, fsync: boolean): Promise<number> {
  // A root of its own: removing the recovered cluster removes its root.
  const root = scratchRoot();
  const data = join(root, `replay-${name}`);
  cpSync(backup, data, { recursive: true });
  const { uid, gid } = postgresIds();
  execFileSync('chown', ['-R', `${uid}:${gid}`, data]);
  const cluster = await startCluster({ root, data, start: false, settings: { fsync } });
  try {
    writeSettings(data, { archive_mode: 'off', restore_command: restoreCommand });
    writeFileSync(join(data, 'recovery.signal'), '');
    const started = process.hrtime.bigint();
    cluster.start({ wait: false });
    await until(
      'recovery to end',
      () => {
        const r = spawnSync('psql', ['-XAtqc', 'select not pg_is_in_recovery()'], {
          env: cluster.env(),
          encoding: 'utf8',
        });
        return r.status === 0 && r.stdout.trim() === 't';
      },
      1_800_000,
      20,
    );
    return seconds(started);
  } finally {
    cluster.remove();
  }
}

/**
 * restore_command = pgbp wal-fetch from `url`, through the launcher, with a node (PGBP_NODE) that
 * notes in `log` each call that reached Node: `wal-fetch NAME` or `wal-prefetch AFTER`.
 */
function countedFetch(
  dir: string,
  url: string,
): { readonly command: string; readonly starts: () => string[] } {
  const log = join(dir, 'node-starts');
  const node = join(dir, 'node');
  writeFileSync(log, '');
  const { uid, gid } = postgresIds();
  chownSync(log, uid, gid);
  writeFileSync(
    node,
    `#!/bin/sh\nprintf '%s %s %s\\n' "$2" "$3" "$(date +%s.%N)" >>${shellQuote(log)}\nexec ${shellQuote(process.execPath)} "$@"\n`,
    { mode: 0o755 },
  );
  const args = ['wal-fetch', '%f', '%p', '--store', url];
  return {
    command: [
      `PGBP_NODE=${shellQuote(node)}`,
      shellQuote(PGBP_LAUNCHER),
      ...args.map((a) => (a.startsWith('%') ? a : shellQuote(a))),
    ].join(' '),
    starts: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
}

function peakRss(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): number {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, PGBP, ...args], {
    cwd,
    env,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`pgbp ${args[0]} failed: ${r.stderr}`);
  const kb = Number(r.stderr.trim().split('\n').at(-1));
  return Math.round((kb / 1024) * 10) / 10;
}

async function main(): Promise<void> {
  const moto = await startMoto();
  Object.assign(process.env, moto.env);
  const roots: string[] = [];
  try {
    // The CLI is built before PostgreSQL (as postgres) first runs it.
    execFileSync(process.execPath, [PGBP, '--version'], { stdio: 'ignore' });
    const settings = {
      wal_level: 'replica',
      archive_mode: 'on',
      max_wal_size: '4GB',
      checkpoint_timeout: '30min',
      fsync: true,
    };

    const cpRoot = scratchRoot();
    roots.push(cpRoot);
    const cpDir = postgresDir(cpRoot, 'archive');
    const cpCluster = await startCluster({
      root: cpRoot,
      settings: { ...settings, archive_command: `cp %p ${shellQuote(cpDir)}/%f` },
    });
    const cpBurst = await burst(cpCluster);
    cpCluster.remove();

    const { root, source, url, storeDir: pgbpStore } = await startArchivingCluster({ settings });
    roots.push(root);
    const storeDir = pgbpStore as string;
    const backup = join(root, 'backup');
    const pgbpBurst = await burst(source, () => plainBaseBackup(source, backup));
    source.stop('fast');

    // The same WAL: decompressed into a plain directory for cp, and pushed to S3.
    const plain = postgresDir(root, 'plain');
    const bucket = `pgbp-bench-wal-${process.pid}`;
    execFileSync(
      process.execPath,
      [
        '-e',
        `
      const { S3Client, CreateBucketCommand } = require('@aws-sdk/client-s3');
      new S3Client({ forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: ${JSON.stringify(bucket)} })).catch((e) => { console.error(e); process.exit(1); });
    `,
      ],
      { env: process.env, stdio: 'inherit' },
    );
    const s3Url = `s3://${bucket}/bench`;
    const store = new FileStore(storeDir);
    let storedBytes = 0;
    let segmentCount = 0;
    const names: string[] = [];
    for await (const o of store.list('')) {
      const parsed = parseWalObjectKey(o.key);
      if (!parsed) continue;
      execFileSync('zstd', ['-d', '-q', '-f', join(storeDir, o.key), '-o', join(plain, parsed.name)]);
      names.push(parsed.name);
      if (/^[0-9A-F]{24}$/.test(parsed.name)) {
        storedBytes += o.size;
        segmentCount++;
      }
    }
    execFileSync('chown', ['-R', 'postgres', plain]);
    // Segments first: the first push to an empty archive must carry the system identifier.
    const ordered = [...names].sort(
      (x, y) => Number(x.length > 24) - Number(y.length > 24) || (x < y ? -1 : 1),
    );
    const s3Pushes = ordered.map((n) => ['wal-push', join(plain, n), '--store', s3Url]);
    for (let i = 0; i < s3Pushes.length; i += 4) {
      await Promise.all(
        s3Pushes.slice(i, i + 4).map(
          (args) =>
            new Promise<void>((resolve, reject) => {
              const child = spawn(process.execPath, [PGBP, ...args], {
                stdio: ['ignore', 'ignore', 'pipe'],
                env: process.env,
              });
              let stderr = '';
              child.stderr.on('data', (d: Buffer) => {
                stderr += d.toString();
              });
              child.once('close', (code) =>
                code === 0 ? resolve() : reject(new Error(`push to S3 failed (${code}): ${stderr}`)),
              );
            }),
        ),
      );
    }

    const cpCommand = `cp ${shellQuote(plain)}/%f %p`;
    const fileFetch = countedFetch(postgresDir(root, 'count-file'), url);
    const s3Fetch = countedFetch(postgresDir(root, 's3-count'), s3Url);
    const replayCp = await replay(backup, 'cp', cpCommand, true);
    const replayFile = await replay(backup, 'file', fileFetch.command, true);
    const replayS3 = await replay(backup, 's3', s3Fetch.command, true);
    const nodeStarts = (starts: string[]) => ({
      fetch: starts.filter((s) => s.startsWith('wal-fetch ')).length,
      prefetch: starts.filter((s) => s.startsWith('wal-prefetch ')).length,
    });
    const startsFile = nodeStarts(fileFetch.starts());
    const startsS3 = nodeStarts(s3Fetch.starts());
    console.error(
      `restore_command calls that started Node (file store): ${fileFetch
        .starts()
        .map((s) => s.split(' ').slice(0, 2).join(' '))
        .join(', ')}`,
    );
    // Without fsync: what restore_command itself adds, without the disk's cost on both sides.
    const offCp = await replay(backup, 'cp-off', cpCommand, false);
    const offFile = await replay(
      backup,
      'file-off',
      pgbpCommand(['wal-fetch', '%f', '%p', '--store', url]),
      false,
    );
    const offS3 = await replay(
      backup,
      's3-off',
      pgbpCommand(['wal-fetch', '%f', '%p', '--store', s3Url]),
      false,
    );

    const sample = names.find((n) => /^[0-9A-F]{24}$/.test(n)) ?? '';
    const rssDir = postgresDir(root, 'rss');
    cpSync(join(plain, sample), join(rssDir, sample));
    const pushRss = peakRss(
      ['wal-push', join(rssDir, sample), '--store', `file://${postgresDir(root, 'rss-store')}`],
      rssDir,
      process.env,
    );
    const fetchRss = peakRss(
      ['wal-fetch', sample, join(rssDir, 'RECOVERYXLOG'), '--store', url],
      rssDir,
      process.env,
    );
    const segmentBytes = statSync(join(plain, sample)).size;

    console.log(
      JSON.stringify({
        bench: 'wal',
        scale,
        segments: pgbpBurst.segments,
        push: {
          cpLoadSeconds: round3(cpBurst.loadSeconds),
          pgbpLoadSeconds: round3(pgbpBurst.loadSeconds),
          loadRatio: round3(pgbpBurst.loadSeconds / cpBurst.loadSeconds),
          cpCatchUpSeconds: round3(cpBurst.catchUpSeconds),
          pgbpCatchUpSeconds: round3(pgbpBurst.catchUpSeconds),
        },
        replay: {
          segments: segmentCount,
          cpSeconds: round3(replayCp),
          fileSeconds: round3(replayFile),
          s3Seconds: round3(replayS3),
          fileRatio: round3(replayFile / replayCp),
          s3Ratio: round3(replayS3 / replayCp),
        },
        nodeStarts: { file: startsFile, s3: startsS3 },
        replayFsyncOff: {
          cpSeconds: round3(offCp),
          fileSeconds: round3(offFile),
          s3Seconds: round3(offS3),
          fileRatio: round3(offFile / offCp),
          s3Ratio: round3(offS3 / offCp),
        },
        storedBytesPerSegment: Math.round(storedBytes / Math.max(segmentCount, 1)),
        segmentBytes,
        peakRssMiB: { push: pushRss, fetch: fetchRss },
      }),
    );
  } finally {
    for (const r of roots) {
      spawnSync(
        'bash',
        [
          '-c',
          `for d in ${shellQuote(r)}/*/; do [ -f "$d/postmaster.pid" ] && runuser -u postgres -- ${shellQuote(pgBin('pg_ctl'))} -D "$d" -m immediate -w stop; done`,
        ],
        { stdio: 'ignore' },
      );
      rmSync(r, { recursive: true, force: true });
    }
    moto.stop();
  }
}

await main();
