import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { cksumOf } from '../../../lib/wal/cksum.js';
import { archiveTag, entryName, prefetchDir } from '../../../lib/wal/spool.js';
import {
  plainBaseBackup,
  recoveringCluster,
  startArchivingCluster,
} from '../../support/archiving-cluster.js';
import { runCli } from '../../support/cli.js';
import {
  asPostgres,
  pgBin,
  postgresIds,
  type ScratchCluster,
  startCluster,
  writeSettings,
} from '../../support/scratch-cluster.js';
import {
  archiverStats,
  archiveStatus,
  pgbpCommand,
  switchAndWaitArchived,
  waitFor,
} from '../../support/wal.js';

const ROWS = "select count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) from t";
const clusters: ScratchCluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.remove();
});

beforeAll(async () => {
  expect((await runCli(['--version'])).code).toBe(0);
});

async function archivingCluster() {
  const archiving = await startArchivingCluster({ walSegmentMb: 1 });
  clusters.push(archiving.source);
  archiving.source.sql('create table t (id int primary key, payload text)');
  return { ...archiving, store: archiving.storeDir ?? '' };
}

async function storedNames(store: string): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for await (const o of new FileStore(store).list('')) {
    const parsed = parseWalObjectKey(o.key);
    if (parsed) names.set(parsed.name, o.key);
  }
  return names;
}

function hiddenFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((p) =>
    (p.split('/').at(-1) ?? '').startsWith('.'),
  );
}

describe('WAL archiving when things go wrong, as PostgreSQL sees it', { timeout: 240_000 }, () => {
  it('keeps a segment .ready while the store cannot be written, with nothing partial stored, and archives it once the store is back', async () => {
    const { store, source } = await archivingCluster();
    await switchAndWaitArchived(source);
    const walDir = join(store, '~cluster', 'main', 'wal');
    const folders = readdirSync(walDir).map((f) => join(walDir, f));
    for (const f of [walDir, ...folders]) chmodSync(f, 0o555);
    try {
      source.sql("insert into t select g, 'x' from generate_series(1, 1000) g");
      const pending = source.sql('select pg_walfile_name(pg_switch_wal())');
      await waitFor('a failed archive attempt', () => archiverStats(source).failed > 0);
      expect(archiverStats(source).lastFailed).toBe(pending);
      expect(archiveStatus(source, '.ready')).toContain(pending);
      expect((await storedNames(store)).has(pending)).toBe(false);
      expect(hiddenFiles(store)).toEqual([]);
      expect(readFileSync(source.log, 'utf8')).toMatch(/pgbp wal-push .*WalArchiveUnavailableError/);
    } finally {
      for (const f of [walDir, ...folders]) chmodSync(f, 0o755);
    }
    await waitFor('the segment archived once the store is back', () =>
      archiveStatus(source, '.done').includes(
        source.sql("select coalesce(last_failed_wal, '') from pg_stat_archiver"),
      ),
    );
    expect((await storedNames(store)).size).toBeGreaterThan(1);
    expect(hiddenFiles(store)).toEqual([]);
  });

  it('stops the recovering server on a damaged archived segment instead of promoting it', async () => {
    const archiving = await archivingCluster();
    const { root, store, source } = archiving;
    const backup = plainBaseBackup(source, join(root, 'backup'));
    source.sql("insert into t select g, repeat('y', 200) from generate_series(1, 5000) g");
    const damaged = await switchAndWaitArchived(source);
    source.stop('fast');
    const key = (await storedNames(store)).get(damaged);
    expect(key).toBeDefined();
    const path = join(store, key ?? '');
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0x20;
    writeFileSync(path, bytes);

    const restored = await recoveringCluster(archiving, backup);
    clusters.push(restored);
    const before = readFileSync(restored.log, 'utf8').length;
    restored.start({ wait: false });
    const log = await waitFor(
      'the recovering server to give up or promote',
      () => {
        const text = readFileSync(restored.log, 'utf8').slice(before);
        return /database system is shut down|ready to accept connections/.test(text) && text;
      },
      120_000,
    );
    await waitFor('the recovering server to stop', () => !restored.running());
    expect(log).toContain(`pgbp wal-fetch ${damaged}: recovery must not go on without it: CorruptWalError`);
    expect(log).toContain('shutting down due to startup process failure');
    expect(log).not.toMatch(/selected new timeline ID|database system is ready to accept connections/);
    const control = asPostgres([pgBin('pg_controldata'), backup]);
    expect(control).toMatch(/Database cluster state:\s+in archive recovery/);
  });

  it('recovers to the end when the prefetch spool is damaged or cannot be written, fetching directly', async () => {
    const { root, store, url, source } = await archivingCluster();
    const backup = join(root, 'backup');
    plainBaseBackup(source, backup);
    source.sql("insert into t select g, repeat('z', 200) from generate_series(1, 5000) g");
    const last = await switchAndWaitArchived(source);
    const rows = source.sql(ROWS);
    source.stop('fast');
    const stored = await storedNames(store);
    const { uid, gid } = postgresIds();

    for (const spoolState of ['damaged', 'unwritable'] as const) {
      const data = join(root, `recover-${spoolState}`);
      cpSync(backup, data, { recursive: true });
      // The spool of this archive, as restore_command's line names it.
      const spool = prefetchDir(data, archiveTag(data, { store: url }));
      mkdirSync(spool, { recursive: true });
      const damagedEntries: string[] = [];
      if (spoolState === 'damaged') {
        // What a crash or a bad disk could leave: every segment spooled, none of them right. Half
        // carry the check the launcher repeats (cli/pgbp, cksum of the bytes as verified), half
        // only the digest the CLI verifies.
        let i = 0;
        for (const [name, key] of stored) {
          const sha = parseWalObjectKey(key)?.sha256 ?? '';
          if (!/^[0-9A-F]{24}$/.test(name)) continue;
          const good = execFileSync('zstd', ['-d', '-q', '-c', join(store, key)], { maxBuffer: 1 << 26 });
          const bad = Buffer.from(good);
          bad[bad.length >> 1] = (bad[bad.length >> 1] ?? 0) ^ 0x10;
          const entry =
            i++ % 2 === 0 ? entryName(name, sha, await cksumOf(good, process.env)) : `${name}-${sha}`;
          writeFileSync(join(spool, entry), bad);
          damagedEntries.push(entry);
        }
      }
      execFileSync('chown', ['-R', `${uid}:${gid}`, data]);
      if (spoolState === 'unwritable') {
        execFileSync('chown', ['root:root', spool]);
        chmodSync(spool, 0o555);
      }
      const restored = await startCluster({ root, data, start: false });
      clusters.push(restored);
      writeSettings(data, {
        archive_mode: 'off',
        restore_command: pgbpCommand(['wal-fetch', '%f', '%p', '--store', url]),
      });
      writeFileSync(join(data, 'recovery.signal'), '');
      execFileSync('chown', [`${uid}:${gid}`, join(data, 'recovery.signal')]);
      restored.start();
      await waitFor('recovery to end', () => restored.sql('select not pg_is_in_recovery()') === 't', 120_000);
      expect(restored.sql(ROWS), spoolState).toBe(rows);
      expect(readFileSync(restored.log, 'utf8')).toContain(`restored log file "${last}" from archive`);
      if (spoolState === 'damaged') {
        expect(damagedEntries.length).toBeGreaterThan(1);
        expect(readdirSync(spool).filter((n) => damagedEntries.includes(n))).toEqual([]);
      }
      restored.stop('immediate');
    }
  });
});
