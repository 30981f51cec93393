import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressionFromConfig, runDump } from '../../../lib/backup/dump.js';
import { loadConfig, parseConfig } from '../../../lib/config.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { defaultSpawn, type Spawn } from '../../../lib/platform/processes.js';
import { resolveConnection } from '../../../lib/postgres/pg-tools.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-settings-'));
let database: string;

beforeAll(async () => {
  database = uniqueDbName('settings');
  await createDatabase(database, 'create table t as select generate_series(1, 1000) as id');
});

afterAll(async () => {
  await dropDatabase(database);
  rmSync(work, { recursive: true, force: true });
});

/** Dumps with `dump.threads` set to `threads` (or left out) and returns zstd's arguments. */
async function zstdArgsFor(threads: number | undefined): Promise<readonly string[]> {
  const config = parseConfig(
    { stage: 'local', store: 'file:///unused', ...(threads === undefined ? {} : { dump: { threads } }) },
    'test',
  );
  let zstdArgs: readonly string[] = [];
  const spawn: Spawn = (command, args, options) => {
    if (command === 'zstd') zstdArgs = args;
    return defaultSpawn(command, args, options);
  };
  await runDump(
    {
      database,
      connection: resolveConnection(config, process.env, database),
      store: new FileStore(join(work, String(threads))),
      compression: compressionFromConfig(config),
      storageClass: 'STANDARD',
    },
    { env: process.env, logger: silentLogger, spawn },
  );
  return zstdArgs;
}

describe('dump.threads', () => {
  it('compresses on every core by default, on one thread with 1, on N with N', async () => {
    expect(await zstdArgsFor(undefined)).toContain('-T0');
    expect(await zstdArgsFor(1)).toContain('--single-thread');
    expect(await zstdArgsFor(3)).toContain('-T3');
  });

  it('is 1 in the local config, where the server shares the cores', () => {
    const local = loadConfig(join(import.meta.dirname, '../../../config/local.yml'));
    expect(compressionFromConfig(local)).toMatchObject({ codec: 'zstd', level: 1, threads: 1 });
  });
});
