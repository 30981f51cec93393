import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { postgresDir, scratchRoot, startCluster } from '../../support/scratch-cluster.js';

describe('scratch clusters of the tests', () => {
  it('archives with the command it was given, as the postgres OS user, and leaves nothing once removed', async () => {
    const root = scratchRoot();
    const archive = postgresDir(root, 'archive');
    const cluster = await startCluster({
      root,
      settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `cp %p ${archive}/%f` },
    });
    try {
      expect(cluster.sql('select current_user')).toBe('postgres');
      const segment = cluster.sql('select pg_walfile_name(pg_current_wal_lsn())');
      cluster.sql('select pg_switch_wal()');
      for (let i = 0; i < 200 && !existsSync(join(archive, segment)); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(readdirSync(archive)).toContain(segment);
    } finally {
      cluster.remove();
    }
    expect(cluster.running()).toBe(false);
    expect(existsSync(root)).toBe(false);
  });

  it('removes what it made when the server cannot start', async () => {
    const root = scratchRoot();
    await expect(startCluster({ root, settings: { shared_buffers: 'not-a-size' } })).rejects.toThrow(
      /pg_ctl/,
    );
    expect(existsSync(root)).toBe(false);
  });
});
