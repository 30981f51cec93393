import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RestoreFailedError } from '../../../lib/domain/errors.js';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { runRestore } from '../../../lib/restore/restore.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { createDatabase, databaseExists, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { dump, restoreDeps } from './fixture.js';

const work = mkdtempSync(join(tmpdir(), 'pgbp-restore-cause-'));
const store = new FileStore(join(work, 'nas'));
const source = uniqueDbName('cause_src');
const into = uniqueDbName('cause_into');

// A view of forty columns: pg_restore prints its whole definition after the error, which
// pushes the error line itself out of the last lines of what pg_restore says.
const columns = Array.from({ length: 40 }, (_, i) => `id + ${i} as c${i}`).join(', ');

beforeAll(async () => {
  await createDatabase(
    source,
    `create schema base; create schema reports;
     create table base.accounts as select generate_series(1, 10) as id;
     create view reports.wide as select ${columns} from base.accounts;`,
  );
  await dump(store, source);
});

afterAll(async () => {
  await dropDatabase(source);
  await dropDatabase(into);
  rmSync(work, { recursive: true, force: true });
});

describe('a pg_restore that fails', () => {
  it('says why: the error line is kept, not only the statement it was running', async () => {
    const error = await runRestore(
      parseRestoreRequest({ database: source, targetDatabase: into, schemas: ['reports'] }),
      restoreDeps(store),
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(RestoreFailedError);
    expect(error?.message).toMatch(/pg_restore exited with code 1: /);
    expect(error?.message).toMatch(/ERROR: +relation "base\.accounts" does not exist/);
    // And where it stopped: the end of the statement.
    expect(error?.message).toMatch(/FROM base\.accounts;$/);
    expect(await databaseExists(into)).toBe(false);
  });
});
