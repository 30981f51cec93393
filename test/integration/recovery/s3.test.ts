import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listBaseBackups } from '../../../lib/catalog/physical.js';
import { baseBackupKeys } from '../../../lib/domain/physical-layout.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { runCli } from '../../support/cli.js';
import { freePort } from '../../support/ports.js';
import { createBucket, listKeys } from '../../support/s3.js';
import { pgBin, type ScratchCluster, scratchRoot, startCluster } from '../../support/scratch-cluster.js';
import { pgbpCommand, switchAndWaitArchived } from '../../support/wal.js';

const ROWS = "select count(*) || ':' || coalesce(md5(string_agg(t::text, ',' order by id)), '') from t";

/**
 * The physical archive in S3 (moto), end to end through the pgbp commands as an operator runs
 * them: archive_command = pgbp wal-push, pgbp basebackup, then pgbp recover whose server fetches
 * its WAL with pgbp wal-fetch from the same bucket.
 */
describe('pgbp basebackup and recover with an S3 store', { timeout: 300_000 }, () => {
  let source: ScratchCluster | undefined;
  let recovered: string | undefined;

  afterAll(() => {
    if (recovered && existsSync(join(recovered, 'postmaster.pid'))) {
      spawnSync(
        'runuser',
        ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', recovered, '-w', '-m', 'fast', 'stop'],
        {
          stdio: 'ignore',
        },
      );
    }
    source?.remove();
  });

  it('stores the base backup in the bucket and recovers a cluster holding exactly the source rows', async () => {
    expect((await runCli(['--version'])).code).toBe(0);
    const bucket = await createBucket();
    const url = `s3://${bucket}/backups`;
    const root = scratchRoot();
    source = await startCluster({
      root,
      walSegmentMb: 1,
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: pgbpCommand(['wal-push', '%p', '--store', url]),
      },
    });
    source.sql('create table t (id int primary key, payload text)');
    source.sql('insert into t select g, md5(g::text) from generate_series(1, 5000) g');
    await switchAndWaitArchived(source);
    const config = join(root, 'stage.yml');
    writeFileSync(
      config,
      `stage: local\nstore: ${url}\nwal: { cluster: main }\nbasebackup: { threads: 1 }\n`,
    );

    const taken = await runCli(['basebackup', '--config', config, '--json'], { env: source.env() });
    expect(taken.stderr).toBe('');
    expect(taken.code).toBe(0);
    const manifest = JSON.parse(taken.stdout) as { id: string; key: string; sizeBytes: number };
    const keys = baseBackupKeys('backups', 'main', manifest.id);
    // One object: PostgreSQL's backup_manifest is inside the tar stream.
    expect(await listKeys(bucket, `${keys.folder}/`)).toEqual([keys.tar('base')]);
    expect(await listKeys(bucket, keys.manifest)).toEqual([keys.manifest]);
    const { bases } = await listBaseBackups(new S3Store(bucket, 'backups'), 'main');
    expect(bases.map((b) => [b.id, b.sizeBytes])).toEqual([[manifest.id, manifest.sizeBytes]]);

    // Written after the base backup: only the archived WAL brings these back.
    source.sql("update t set payload = 'after' where id % 3 = 0");
    source.sql("insert into t select g, 'late' from generate_series(5001, 6000) g");
    await switchAndWaitArchived(source);
    const rows = source.sql(ROWS);

    recovered = join(root, 'recovered');
    const port = await freePort();
    const recovery = await runCli(
      [
        'recover',
        '--pgdata',
        recovered,
        '--latest',
        '--start',
        '--port',
        String(port),
        '--config',
        config,
        '--json',
      ],
      { env: { ...source.env(), PGPORT: String(port) } },
    );
    expect(recovery.stderr).toBe('');
    expect(recovery.code).toBe(0);
    const report = JSON.parse(recovery.stdout) as { baseId: string };
    expect(report.baseId).toBe(manifest.id);
    const psql = spawnSync(
      'psql',
      ['-X', '-Atq', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', ROWS],
      { encoding: 'utf8' },
    );
    expect(psql.stdout.trim()).toBe(rows);
  });
});
