/**
 * WAL archive benchmark (`npm run bench:wal`): one JSON line, every ratio measured in one run.
 *
 * Push under a burst: `pgbench -i -s BENCH_WAL_SCALE` (50 by default: about 700 MB of WAL) on a
 * fresh cluster archiving with `cp %p DIR/%f`, and on another archiving with pgbp wal-push to a
 * directory store, BENCH_WAL_PUSH_ROUNDS times each (3), in the order cp, pgbp, pgbp, cp, cp,
 * pgbp: a drift of the machine's speed over the run falls on both alike. Reported: the shortest
 * load with each (the ratio is what archiving costs the load) and the longest time after a load's
 * end until the archive was caught up (the last segment the load wrote, switched out at its end,
 * archived).
 *
 * Replay: a base backup (pg_basebackup -X none) taken before pgbp's first load is recovered to
 * the end of the archive with `restore_command = 'cp DIR/%f %p'` from the same WAL decompressed
 * into a plain directory, with pgbp wal-fetch from the directory store, and from S3 (moto):
 * BENCH_WAL_REPLAY_ROUNDS rounds (3), each in another order, after one uncounted recovery (the
 * run's first is slower whatever it uses); the shortest of each is reported. Recovery time is
 * from the server's start until its log says it accepts connections, read by this process: a
 * psql every few milliseconds would take the CPU it measures (on two cores the prefetcher needs
 * the one that redo leaves), and dirty pages are written out (`sync`) before each start.
 *
 * Every cluster here runs with `fsync = on`, as production does (the tests' scratch clusters turn
 * it off for speed): a server that fsyncs pays for its WAL flushes, restartpoints and the
 * end-of-recovery checkpoint, and that is what the issue's own reference measurement (pgBackRest
 * 2.45, ~250 ms per segment) saw. The same three replays with `fsync = off` are reported too, as
 * `replayFsyncOff` (they add a few seconds): without the disk's cost, they show what restore_command
 * itself adds per segment.
 *
 * `nodeStarts` counts, in the pgbp replay that had the most, the calls of restore_command that
 * started Node (the launcher, cli/pgbp, answers the others itself) and the prefetchers started: a
 * count, not a time, so it does not depend on how loaded the machine is. `nodeCpuSeconds` is the
 * CPU those Node processes and their children (zstd, cksum) used in one replay, the least of the
 * rounds: what the fetch takes from the cores that redo runs on.
 *
 * Every recovery must end its redo where the first one did (the server log's "redo done at").
 *
 * Where pgBackRest is installed (Debian's package; nothing else needs it), the same replays with
 * its archive-get, synchronous and `--archive-async`, from a repository holding the same WAL
 * compressed as pgbp's (zstd, level 1): `pgbackrest*` in `replay` and `replayFsyncOff`, a
 * reference measured on this machine in the same run.
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
  asPostgres,
  pgBin,
  postgresDir,
  postgresIds,
  type ScratchCluster,
  scratchRoot,
  startCluster,
  writeSettings,
} from '../test/support/scratch-cluster.js';
import { shellQuote } from '../test/support/wal.js';
import { startMoto } from './support/moto.js';

const scale = Number(process.env.BENCH_WAL_SCALE ?? 50);
/** Loads per archive_command (cp, pgbp), and replays per restore_command; the best of each is reported. */
const pushRounds = Number(process.env.BENCH_WAL_PUSH_ROUNDS ?? 3);
const replayRounds = Number(process.env.BENCH_WAL_REPLAY_ROUNDS ?? 3);
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

/**
 * Recovers a copy of `backup` with `restoreCommand` to the end of the archive; seconds, from the
 * server's start to its log's "ready to accept connections" (the end-of-recovery checkpoint done).
 * The end is read from the log in this process, not asked of the server: a psql every few
 * milliseconds (a client and a backend each time) would take a core's worth of CPU from what it
 * measures, and on two cores the prefetcher needs the one that redo leaves. Dirty pages of the
 * step before are written out first (`sync`), so that no replay pays for another's writes.
 */
async function replay(
  backup: string,
  name: string,
  restoreCommand: string | ((data: string) => string),
  fsync: boolean,
): Promise<number> {
  // A root of its own: removing the recovered cluster removes its root.
  const root = scratchRoot();
  const data = join(root, `replay-${name}`);
  cpSync(backup, data, { recursive: true });
  const { uid, gid } = postgresIds();
  execFileSync('chown', ['-R', `${uid}:${gid}`, data]);
  const cluster = await startCluster({ root, data, start: false, settings: { fsync } });
  try {
    const command = typeof restoreCommand === 'string' ? restoreCommand : restoreCommand(data);
    writeSettings(data, { archive_mode: 'off', restore_command: command });
    writeFileSync(join(data, 'recovery.signal'), '');
    execFileSync('sync');
    const started = process.hrtime.bigint();
    cluster.start({ wait: false });
    await until('recovery to end', () => recoveryEnded(cluster.log), 1_800_000, 10);
    const took = seconds(started);
    if (cluster.sql('select pg_is_in_recovery()') !== 'f')
      throw new Error(`${name}: the server is still in recovery`);
    // Every recovery replays the same WAL to the same end: one that stopped short (a
    // restore_command that failed, taken for the archive's end) would only look fast.
    const end = /redo done at ([0-9A-F]+\/[0-9A-F]+)/.exec(readFileSync(cluster.log, 'utf8'))?.[1];
    if (!end) throw new Error(`${name}: the server log names no end of redo`);
    redoEnd ??= end;
    if (end !== redoEnd) throw new Error(`${name}: redo ended at ${end}, the first recovery at ${redoEnd}`);
    return took;
  } finally {
    cluster.remove();
  }
}

/** Where the first recovery's redo ended: every other must end there too. */
let redoEnd: string | undefined;

/** Whether the server log says recovery has ended and the server accepts (read-write) connections. */
function recoveryEnded(log: string): boolean {
  let text: string;
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return false;
  }
  if (/FATAL|PANIC/.test(text)) throw new Error(`the recovering server failed:\n${text.slice(-2000)}`);
  return /database system is ready to accept connections/.test(text);
}

/**
 * restore_command = pgbp wal-fetch from `url`, through the launcher, with a node (PGBP_NODE) that
 * notes in `log` each call that reached Node: `wal-fetch NAME` or `wal-prefetch AFTER`.
 */
function countedFetch(
  dir: string,
  url: string,
): { readonly command: string; readonly starts: () => string[]; readonly cpuSeconds: () => Promise<number> } {
  const log = join(dir, 'node-starts');
  const cpuLog = join(dir, 'node-cpu');
  const node = join(dir, 'node');
  const { uid, gid } = postgresIds();
  for (const file of [log, cpuLog]) {
    writeFileSync(file, '');
    chownSync(file, uid, gid);
  }
  writeFileSync(
    node,
    `#!/bin/sh\nprintf '%s %s %s\\n' "$2" "$3" "$(date +%s.%N)" >>${shellQuote(log)}\nexec /usr/bin/time -a -o ${shellQuote(cpuLog)} -f '%U %S' ${shellQuote(process.execPath)} "$@"\n`,
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
    // The prefetcher outlives the recovery by a few seconds (it removes its records once they
    // are too old to answer): its line is written when it exits.
    cpuSeconds: async () => {
      const nodes = () => readFileSync(log, 'utf8').split('\n').filter(Boolean).length;
      const lines = () =>
        readFileSync(cpuLog, 'utf8')
          .split('\n')
          .filter((l) => /^[0-9.]+ [0-9.]+$/.test(l));
      await until('the prefetcher to exit', () => lines().length >= nodes(), 120_000);
      return lines().reduce((sum, l) => sum + l.split(' ').reduce((a, b) => a + Number(b), 0), 0);
    },
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

/**
 * pgBackRest (Debian's package, when installed: the tests never need it) beside pgbp, on the same
 * WAL: a stanza created while the source runs, the WAL pushed into its repository with zstd at
 * level 1 (pgbp's WAL default), and a restore_command of its archive-get, synchronous and async.
 */
function pgBackRest(root: string, source: ScratchCluster) {
  if (spawnSync('pgbackrest', ['version'], { stdio: 'ignore' }).status !== 0) return undefined;
  const conf = join(postgresDir(root, 'pgbackrest'), 'pgbackrest.conf');
  const dirs = Object.fromEntries(
    ['repo', 'log', 'lock', 'spool'].map((d) => [d, postgresDir(root, `pgbackrest-${d}`)]),
  );
  writeFileSync(
    conf,
    [
      '[global]',
      `repo1-path=${dirs.repo}`,
      `log-path=${dirs.log}`,
      `lock-path=${dirs.lock}`,
      `spool-path=${dirs.spool}`,
      'log-level-console=warn',
      'log-level-file=off',
      'compress-type=zst',
      'compress-level=1',
      '[bench]',
      `pg1-path=${source.data}`,
      `pg1-port=${source.port}`,
      `pg1-socket-path=${source.root}`,
      '',
    ].join('\n'),
  );
  chownSync(conf, postgresIds().uid, postgresIds().gid);
  const run = (...args: string[]) =>
    asPostgres(['pgbackrest', `--config=${conf}`, '--stanza=bench', ...args]);
  run('stanza-create');
  return {
    push: (file: string) => run('archive-push', file),
    command:
      (async: boolean) =>
      (data: string): string =>
        // A spool of each recovery's own (inside the root its cluster's removal removes).
        `pgbackrest --config=${conf} --stanza=bench --pg1-path=${data}${async ? ` --archive-async --spool-path=${data}-spool` : ''} archive-get %f "%p"`,
  };
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

    /** A load on a fresh cluster archiving with cp. */
    const cpRun = async () => {
      const cpRoot = scratchRoot();
      roots.push(cpRoot);
      const cpDir = postgresDir(cpRoot, 'archive');
      const cpCluster = await startCluster({
        root: cpRoot,
        settings: { ...settings, archive_command: `cp %p ${shellQuote(cpDir)}/%f` },
      });
      const result = await burst(cpCluster);
      cpCluster.remove();
      return result;
    };
    // The loads in the order cp, pgbp, pgbp, cp (and so on for more rounds): a drift of the
    // machine's speed over the run (the page cache filling, the disk's writeback) falls on both
    // alike. The first pgbp load's WAL is the one replayed.
    const cpBursts = [await cpRun()];
    const { root, source, url, storeDir: pgbpStore } = await startArchivingCluster({ settings });
    roots.push(root);
    const backRest = pgBackRest(root, source);
    const storeDir = pgbpStore as string;
    const backup = join(root, 'backup');
    const pgbpBursts = [await burst(source, () => plainBaseBackup(source, backup))];
    source.stop('fast');
    for (let round = 1; round < pushRounds; round++) {
      const again = async () => {
        const other = await startArchivingCluster({ settings });
        roots.push(other.root);
        pgbpBursts.push(await burst(other.source));
        other.source.remove();
      };
      if (round % 2 === 1) {
        await again();
        cpBursts.push(await cpRun());
      } else {
        cpBursts.push(await cpRun());
        await again();
      }
    }
    const cpLoad = Math.min(...cpBursts.map((b) => b.loadSeconds));
    const pgbpLoad = Math.min(...pgbpBursts.map((b) => b.loadSeconds));
    const pgbpBurst = pgbpBursts[0] as BurstResult;

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

    for (const n of backRest ? ordered : []) backRest?.push(join(plain, n));

    const cpCommand = `cp ${shellQuote(plain)}/%f %p`;
    const allKinds = ['cp', 'file', 's3', 'pgbackrest', 'pgbackrestAsync'] as const;
    type Kind = (typeof allKinds)[number];
    const kinds = allKinds.filter((k) => backRest || !k.startsWith('pgbackrest'));
    /** Each kind's replays, each round in another order (cp, file, s3; file, s3, cp; ...). */
    const replays = async (fsync: boolean) => {
      const times: Record<Kind, number[]> = { cp: [], file: [], s3: [], pgbackrest: [], pgbackrestAsync: [] };
      const starts: Record<'file' | 's3', string[][]> = { file: [], s3: [] };
      const cpu: Record<'file' | 's3', number[]> = { file: [], s3: [] };
      for (let round = 0; round < replayRounds; round++) {
        for (let i = 0; i < kinds.length; i++) {
          const kind = kinds[(round + i) % kinds.length] as Kind;
          const label = `${kind}-${fsync ? 'on' : 'off'}-${round}`;
          if (kind === 'cp') {
            times.cp.push(await replay(backup, label, cpCommand, fsync));
            continue;
          }
          if (kind === 'pgbackrest' || kind === 'pgbackrestAsync') {
            const command = backRest?.command(kind === 'pgbackrestAsync') as (data: string) => string;
            times[kind].push(await replay(backup, label, command, fsync));
            continue;
          }
          const counted = countedFetch(postgresDir(root, `count-${label}`), kind === 'file' ? url : s3Url);
          times[kind].push(await replay(backup, label, counted.command, fsync));
          starts[kind].push(counted.starts());
          cpu[kind].push(await counted.cpuSeconds());
        }
      }
      const best = (kind: Kind) => Math.min(...times[kind]);
      return { times, best, starts, cpu };
    };
    // The run's first recovery is slower, whichever restore_command it uses (the page cache
    // still holds the load's writes): one is run first and not counted.
    await replay(backup, 'warm-up', cpCommand, true);
    const on = await replays(true);
    /** The most restore_command calls that started Node in one replay, by what they ran. */
    const nodeStarts = (perReplay: string[][]) => ({
      fetch: Math.max(...perReplay.map((s) => s.filter((l) => l.startsWith('wal-fetch ')).length)),
      prefetch: Math.max(...perReplay.map((s) => s.filter((l) => l.startsWith('wal-prefetch ')).length)),
    });
    /** The calls that started Node in each replay, as `what name` (the prefetchers' and any wal-fetch's). */
    const startLines = (perReplay: string[][]) =>
      perReplay.map((lines) => lines.map((l) => l.split(' ').slice(0, 2).join(' ')).join(', ')).join(' | ');
    console.error(
      `replay seconds, fsync on: ${JSON.stringify(on.times)}; calls that started Node, file store: ${startLines(on.starts.file)}; S3: ${startLines(on.starts.s3)}`,
    );
    // Without fsync: what restore_command itself adds, without the disk's cost on both sides.
    const off = await replays(false);
    console.error(
      `replay seconds, fsync off: ${JSON.stringify(off.times)}; calls that started Node, file store: ${startLines(off.starts.file)}; S3: ${startLines(off.starts.s3)}`,
    );

    /** One set of replays' shortest times and their ratios to cp's. */
    const figures = (r: typeof on) => ({
      cpSeconds: round3(r.best('cp')),
      fileSeconds: round3(r.best('file')),
      s3Seconds: round3(r.best('s3')),
      fileRatio: round3(r.best('file') / r.best('cp')),
      s3Ratio: round3(r.best('s3') / r.best('cp')),
      ...(backRest
        ? {
            pgbackrestRatio: round3(r.best('pgbackrest') / r.best('cp')),
            pgbackrestAsyncRatio: round3(r.best('pgbackrestAsync') / r.best('cp')),
          }
        : {}),
    });

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
          rounds: pushRounds,
          cpLoadSeconds: round3(cpLoad),
          pgbpLoadSeconds: round3(pgbpLoad),
          loadRatio: round3(pgbpLoad / cpLoad),
          cpCatchUpSeconds: round3(Math.max(...cpBursts.map((b) => b.catchUpSeconds))),
          pgbpCatchUpSeconds: round3(Math.max(...pgbpBursts.map((b) => b.catchUpSeconds))),
        },
        replay: {
          rounds: replayRounds,
          segments: segmentCount,
          ...figures(on),
          ...(backRest
            ? {
                pgbackrestSeconds: round3(on.best('pgbackrest')),
                pgbackrestAsyncSeconds: round3(on.best('pgbackrestAsync')),
              }
            : {}),
        },
        nodeStarts: { file: nodeStarts(on.starts.file), s3: nodeStarts(on.starts.s3) },
        // CPU seconds of the Node processes a replay started (the prefetcher, and any wal-fetch
        // that reached Node), with their children (zstd, cksum): the least of the rounds.
        nodeCpuSeconds: {
          file: round3(Math.min(...on.cpu.file)),
          s3: round3(Math.min(...on.cpu.s3)),
        },
        replayFsyncOff: figures(off),
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
