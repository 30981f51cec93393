import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';
import {
  postgresDir,
  type ScratchCluster,
  scratchRoot,
  startCluster,
} from '../../support/scratch-cluster.js';
import { archiverStats, pgbpCommand, switchAndWaitArchived, waitFor } from '../../support/wal.js';

const clusters: ScratchCluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.remove();
});

beforeAll(async () => {
  expect((await runCli(['--version'])).code).toBe(0);
});

function problems(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('PROBLEM'))
    .map((l) => l.slice('PROBLEM '.length).split(':')[0] ?? '');
}

describe('pgbp check', { timeout: 300_000 }, () => {
  it('passes on a well-configured cluster and names each problem of a misconfigured one', async () => {
    const root = scratchRoot();
    const store = postgresDir(root, 'store');
    const url = `file://${store}`;
    const push = pgbpCommand(['wal-push', '%p', '--store', url]);
    const cluster = await startCluster({
      root,
      walSegmentMb: 1,
      settings: { wal_level: 'replica', archive_mode: 'on', archive_command: push, archive_timeout: 60 },
    });
    clusters.push(cluster);
    await switchAndWaitArchived(cluster);
    const check = (...extra: string[]) =>
      runCli(['check', '--store', url, '--timeout', '120s', ...extra], { env: cluster.env() });

    const good = await check();
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('ok      round trip: switched WAL');
    expect(good.stdout).toContain('WAL archiving works');
    const json = JSON.parse((await check('--json', '--no-round-trip')).stdout);
    expect(json).toMatchObject({ ok: true, cluster: 'main', gaps: [] });

    // archive_command pointing elsewhere, and no archive_timeout.
    cluster.sql(`alter system set archive_command = 'cp %p ${join(root, 'elsewhere')}/%f'`);
    cluster.sql('alter system set archive_timeout = 0');
    cluster.sql('select pg_reload_conf()');
    await waitFor('the reload', () => cluster.sql('show archive_timeout') === '0');
    const elsewhere = await check();
    expect(elsewhere.code).toBe(1);
    expect(problems(elsewhere.stdout)).toEqual(['archive_command', 'archive_timeout']);

    // The archiver failing: pgbp again, but the store cannot be written.
    cluster.sql(`alter system set archive_command = '${push.replace(/'/g, "''")}'`);
    cluster.sql('alter system set archive_timeout = 60');
    cluster.sql('select pg_reload_conf()');
    await waitFor('the reload', () => cluster.sql('show archive_timeout') === '1min');
    const walDir = join(store, '~cluster', 'main', 'wal');
    const folders = [walDir, ...readdirSync(walDir).map((f) => join(walDir, f))];
    for (const f of folders) chmodSync(f, 0o555);
    try {
      // Some WAL first: a switch with nothing written since the last one switches nothing.
      cluster.sql('create table written (x int)');
      cluster.sql('select pg_switch_wal()');
      await waitFor('a failed archive attempt', () => archiverStats(cluster).failed > 0);
      const failing = await check('--timeout', '3s');
      expect(failing.code).toBe(1);
      expect(problems(failing.stdout)).toEqual(['archiver', 'round trip']);
      expect(failing.stdout).toMatch(/PROBLEM archiver: archive_command is failing: the last attempt \(0000/);
    } finally {
      for (const f of folders) chmodSync(f, 0o755);
    }

    // Archiving off altogether.
    cluster.sql('alter system set archive_mode = off');
    cluster.stop('fast');
    cluster.start();
    const off = await check();
    expect(off.code).toBe(1);
    expect(problems(off.stdout)).toContain('archive_mode');
    expect(off.stdout).toContain('archive_mode = off: expected on');
  });
});
