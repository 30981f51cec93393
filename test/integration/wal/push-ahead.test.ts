import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { parseWalFileName } from '../../../lib/domain/wal-names.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { decompress } from '../../../lib/wal/codec.js';
import { startArchivingCluster } from '../../support/archiving-cluster.js';
import { PGBP_LAUNCHER } from '../../support/cli.js';
import { postgresDir, postgresIds, type ScratchCluster } from '../../support/scratch-cluster.js';
import { archiverStats, shellQuote, switchAndWaitArchived, waitFor } from '../../support/wal.js';

const clusters: ScratchCluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.remove();
});

/**
 * archive_command through the launcher with a node (PGBP_NODE) that notes each call that reached
 * Node in `log`; the pusher that such a call starts runs as a process of its own, not noted.
 */
function countedPush(root: string, url: string): { command: string; log: string } {
  const dir = postgresDir(root, 'count');
  const log = join(dir, 'node-starts');
  const node = join(dir, 'node');
  writeFileSync(log, '');
  const { uid, gid } = postgresIds();
  chownSync(log, uid, gid);
  writeFileSync(
    node,
    `#!/bin/sh\necho "$2 $3" >>${shellQuote(log)}\nexec ${shellQuote(process.execPath)} "$@"\n`,
    {
      mode: 0o755,
    },
  );
  return {
    command: `PGBP_NODE=${shellQuote(node)} ${shellQuote(PGBP_LAUNCHER)} wal-push %p --store ${shellQuote(url)}`,
    log,
  };
}

function pusherLockOf(data: string): string | undefined {
  const pushed = join(data, 'pg_wal', '.pgbp', 'pushed');
  if (!existsSync(pushed)) return undefined;
  const [tag] = readdirSync(pushed);
  return tag ? join(pushed, tag, '.pusher') : undefined;
}

describe('wal-push under a burst', { timeout: 240_000 }, () => {
  it('stores a burst through the pusher, PostgreSQL calls answered without Node, each segment equal to its own copy', async () => {
    const archiving = await startArchivingCluster({ walSegmentMb: 1 });
    const { source, root, url } = archiving;
    clusters.push(source);
    const counted = countedPush(root, url);
    source.sql(`alter system set archive_command = ${"'" + counted.command.replace(/'/g, "''") + "'"}`);
    source.sql('select pg_reload_conf()');
    // About 30 segments of 1 MiB in a second or so: far more than one call pushes in that time.
    source.sql('create table t (id int primary key, payload text)');
    source.sql('insert into t select g, repeat(md5(g::text), 4) from generate_series(1, 100000) g');
    const last = await switchAndWaitArchived(source);

    const calls = readFileSync(counted.log, 'utf8').split('\n').filter(Boolean);
    const pgWal = join(source.data, 'pg_wal');
    const done = readdirSync(join(pgWal, 'archive_status'))
      .filter((n) => n.endsWith('.done'))
      .map((n) => n.slice(0, -'.done'.length))
      .filter((n) => parseWalFileName(n)?.kind === 'segment' && n <= last);
    expect(done.length).toBeGreaterThan(20);
    // The first call of the burst starts the pusher; PostgreSQL's calls that follow find its records.
    expect(calls.filter((c) => c.startsWith('wal-push ')).length).toBeLessThan(done.length / 6);

    const store = new FileStore(archiving.storeDir as string);
    const keys = new Map<string, string>();
    for await (const o of store.list('')) {
      const parsed = parseWalObjectKey(o.key);
      if (parsed) keys.set(parsed.name, o.key);
    }
    for (const name of done.filter((n) => existsSync(join(pgWal, n)))) {
      const key = keys.get(name);
      expect(key, name).toBeDefined();
      const original = readFileSync(join(pgWal, name));
      expect((await decompress(await store.getBytes(key ?? ''), process.env)).equals(original), name).toBe(
        true,
      );
    }
    expect(archiverStats(source).failed).toBe(0);

    // Nothing ready, the server stopped: the pusher is gone, its lock with it.
    source.stop('fast');
    const lock = pusherLockOf(source.data);
    await waitFor('the pusher to exit', () => !lock || !existsSync(lock), 30_000);
    // Nothing of its own left in pg_wal (markers, the copies it read segments from): at most
    // records that no call used.
    const records = lock ? readdirSync(dirname(lock)) : [];
    expect(records.filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
