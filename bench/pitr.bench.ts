/**
 * Point-in-time recovery benchmark (`npm run bench:pitr`): one JSON line. On a scratch cluster of
 * about 1 GB (pgbench, scale BENCH_PITR_SCALE, 60 by default), in one run:
 *   a) pg_basebackup -D - -Ft -X none | zstd -1 -T0 > file    the plain pipe
 *   b) pgbp basebackup to the file store                     target: at most 1.10 × a
 *   then about BENCH_PITR_WAL_MB (700) of WAL written and archived (pgbp wal-push, and `cp`
 *   into a plain directory for the plain tools), and
 *   c) plain recovery: b's tar extracted, restore_command `cp`, started, promoted, checked
 *   d) pgbp recover --latest --start: fetch, verify, replay from the archive, promote, check
 * reported as seconds, ratios and the peak RSS of each pgbp process (GNU time).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { outputOf } from '../lib/platform/processes.js';
import {
  asPostgres,
  pgBin,
  postgresDir,
  scratchRoot,
  startCluster,
  writeSettings,
} from '../test/support/scratch-cluster.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const scale = Number(process.env.BENCH_PITR_SCALE ?? 60);
const walMb = Number(process.env.BENCH_PITR_WAL_MB ?? 700);
const pgbp = resolve(import.meta.dirname, '../cli/pgbp.mjs');
const launcher = resolve(import.meta.dirname, '../cli/pgbp');

interface Timed {
  readonly seconds: number;
  readonly stdout: string;
  readonly maxRssMb: number;
}

async function timed(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  const started = process.hrtime.bigint();
  const { code, stdout, stderr } = await outputOf(
    spawn('/usr/bin/time', ['-f', '%M', command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code}): ${stderr.slice(-800)}`);
  const rssKb = Number(stderr.trim().split('\n').at(-1));
  return { seconds, stdout, maxRssMb: Math.round(rssKb / 1024) };
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const quote = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;

async function main(): Promise<void> {
  // The CLI bundle is built once, by this user, before the server's archive_command runs it.
  spawnSync(process.execPath, [pgbp, '--version'], { stdio: 'ignore' });
  const root = scratchRoot();
  const storeDir = postgresDir(root, 'store');
  const plainWal = postgresDir(root, 'plain-wal');
  const config = join(root, 'bench.yml');
  writeFileSync(config, `stage: local\nstore: file://${storeDir}\nwal: { cluster: bench }\n`);
  spawnSync('chmod', ['644', config]);
  // archive_command as installed: the `pgbp` launcher (cli/pgbp), with this node for the CLI.
  const push = [
    `PGBP_NODE=${quote(process.execPath)}`,
    quote(launcher),
    'wal-push',
    '%p',
    '--config',
    quote(config),
  ].join(' ');
  const cluster = await startCluster({
    root,
    settings: {
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: `${push} && cp %p ${plainWal}/%f`,
      max_wal_size: '4GB',
      checkpoint_timeout: '30min',
    },
  });
  const recovered: string[] = [];
  try {
    const env = cluster.env();
    asPostgres([
      pgBin('pgbench'),
      '-i',
      '-q',
      '-s',
      String(scale),
      '-h',
      '127.0.0.1',
      '-p',
      String(cluster.port),
      'postgres',
    ]);
    const clusterBytes = Number(cluster.sql('select sum(pg_database_size(datname)) from pg_database'));

    const best = { a: Infinity, b: Infinity };
    let bRss = 0;
    let baseId = '';
    let tarFile = '';
    for (let round = 0; round < rounds; round += 1) {
      const pipeFile = join(root, 'pipe.tar.zst');
      const a = await timed(
        'sh',
        ['-c', `pg_basebackup -D - -Ft -X none --checkpoint=fast 2>/dev/null | zstd -1 -T0 -q > ${pipeFile}`],
        env,
      );
      best.a = Math.min(best.a, a.seconds);
      const b = await timed(process.execPath, [pgbp, 'basebackup', '--config', config, '--json'], env);
      best.b = Math.min(best.b, b.seconds);
      bRss = Math.max(bRss, b.maxRssMb);
      const manifest = JSON.parse(b.stdout) as { id: string; key: string };
      baseId = manifest.id;
      tarFile = join(storeDir, manifest.key);
    }

    // WAL to replay: pgbench updates until about walMb were written, then archived.
    const startLsn = cluster.sql('select pg_current_wal_lsn()');
    for (let i = 0; i < 200; i++) {
      asPostgres([
        pgBin('pgbench'),
        '-n',
        '-t',
        '20000',
        '-c',
        '2',
        '-h',
        '127.0.0.1',
        '-p',
        String(cluster.port),
        'postgres',
      ]);
      const written = Number(cluster.sql(`select pg_wal_lsn_diff(pg_current_wal_lsn(), '${startLsn}')`));
      if (written >= walMb * 1024 * 1024) break;
    }
    const walBytes = Number(cluster.sql(`select pg_wal_lsn_diff(pg_current_wal_lsn(), '${startLsn}')`));
    const last = cluster.sql('select pg_walfile_name(pg_switch_wal())');
    for (;;) {
      const archived = cluster.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
      if (archived >= last) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const expected = cluster.sql('select sum(abalance) from pgbench_accounts');

    // c) plain tools.
    const plain = postgresDir(root, 'plain');
    const c0 = process.hrtime.bigint();
    // As the user that ran pgbp basebackup (its files are that user's); chowned to postgres below.
    const extracted = spawnSync('sh', ['-c', `zstd -d -q -c ${quote(tarFile)} | tar -x -C ${quote(plain)}`], {
      encoding: 'utf8',
    });
    if (extracted.status !== 0) throw new Error(`extracting the base backup failed: ${extracted.stderr}`);
    writeSettings(plain, { restore_command: `cp ${plainWal}/%f %p`, archive_mode: 'off' });
    writeFileSync(join(plain, 'recovery.signal'), '');
    spawnSync('chown', ['-R', 'postgres:postgres', plain]);
    // PostgreSQL starts only on a data directory that is its user's alone.
    spawnSync('chmod', ['700', plain]);
    const plainCluster = await startCluster({
      root,
      data: plain,
      start: false,
      settings: { archive_mode: 'off' },
    });
    recovered.push(plain);
    try {
      plainCluster.start();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${readFileSync(plainCluster.log, 'utf8').slice(-1500)}`);
    }
    for (;;) {
      if (plainCluster.sql('select pg_is_in_recovery()') === 'f') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const plainSum = plainCluster.sql('select sum(abalance) from pgbench_accounts');
    const cSeconds = Number(process.hrtime.bigint() - c0) / 1e9;
    plainCluster.stop();

    // d) pgbp.
    const target = join(root, 'pgbp-recovered');
    const port = plainCluster.port + 1;
    mkdirSync(target, { mode: 0o700 });
    spawnSync('chown', ['postgres:postgres', target]);
    recovered.push(target);
    const d = await timed(
      process.execPath,
      [
        pgbp,
        'recover',
        '--pgdata',
        target,
        '--latest',
        '--base',
        baseId,
        '--start',
        '--port',
        String(port),
        '--config',
        config,
        '--json',
      ],
      env,
    );
    const report = JSON.parse(d.stdout) as { rtoSeconds: number; segmentsReplayed: number };
    const pgbpSum = spawnSync(
      'psql',
      [
        '-X',
        '-Atq',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-c',
        'select sum(abalance) from pgbench_accounts',
      ],
      { encoding: 'utf8' },
    ).stdout.trim();
    asPostgres([pgBin('pg_ctl'), '-D', target, '-w', '-m', 'fast', 'stop']);

    const result = {
      bench: 'pitr',
      clusterBytes,
      rounds,
      basebackup: {
        pipeSeconds: round3(best.a),
        pgbpSeconds: round3(best.b),
        ratio: round3(best.b / best.a),
        target: 1.1,
        pgbpMaxRssMb: bRss,
      },
      recovery: {
        walBytes,
        segmentsReplayed: report.segmentsReplayed,
        plainSeconds: round3(cSeconds),
        pgbpSeconds: round3(d.seconds),
        pgbpRtoSeconds: round3(report.rtoSeconds),
        ratio: round3(d.seconds / cSeconds),
        pgbpMaxRssMb: d.maxRssMb,
        sameData: plainSum === expected && pgbpSum === expected,
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const dir of recovered)
      spawnSync('runuser', ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', dir, '-m', 'immediate', 'stop'], {
        stdio: 'ignore',
      });
    cluster.remove();
  }
}

await main();
