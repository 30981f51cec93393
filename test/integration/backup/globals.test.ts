import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDump } from '../../../lib/backup/dump.js';
import { keysFor } from '../../../lib/domain/backup-layout.js';
import { parseGlobalsManifest } from '../../../lib/domain/globals.js';
import { silentLogger } from '../../../lib/platform/logger.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { createDatabase, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import { connection } from '../restore/fixture.js';

// Roles are cluster-wide on the shared server: this file creates its own, uniquely named, and
// drops exactly those.
const suffix = randomBytes(4).toString('hex');
const owner = `pgbp_t_owner_${suffix}`;
const ownerPassword = `pw-${randomBytes(8).toString('hex')}`;
const database = uniqueDbName('globals');
const work = mkdtempSync(join(tmpdir(), 'pgbp-globals-'));

beforeAll(async () => {
  await withClient('postgres', (c) => c.query(`create role ${owner} login password '${ownerPassword}'`));
  await createDatabase(database);
  await withClient(database, (c) =>
    c.query(`create table items (id int primary key); alter table items owner to ${owner}`),
  );
});

afterAll(async () => {
  await dropDatabase(database);
  await withClient('postgres', (c) => c.query(`drop role if exists ${owner}`));
  rmSync(work, { recursive: true, force: true });
});

function dumpAs(user: string, dir: string, at: Date) {
  return runDump(
    {
      database,
      connection: { ...connection, user, database },
      store: new FileStore(dir),
      compression: { codec: 'zstd', level: 1, threads: 1 },
      storageClass: 'STANDARD',
    },
    { env: process.env, logger: silentLogger, clock: () => new Date(at) },
  );
}

describe('each dump captures the cluster globals', () => {
  it('as a superuser: roles with their passwords, beside the dump, with a manifest that holds none', async () => {
    const dir = join(work, 'superuser');
    const manifest = await dumpAs(connection.user, dir, new Date('2026-06-20T02:00:00Z'));
    const keys = keysFor('', manifest.id);
    const globals = parseGlobalsManifest(JSON.parse(readFileSync(join(dir, keys.globalsManifest), 'utf8')));
    const object = readFileSync(join(dir, keys.globals));
    expect(globals).toMatchObject({
      backupId: manifest.id,
      database,
      key: keys.globals,
      sizeBytes: object.length,
      sha256: createHash('sha256').update(object).digest('hex'),
      serverVersion: manifest.serverVersion,
      rolePasswords: 'included',
    });
    expect(globals.roles).toContain(owner);
    // The object carries the password's hash (that is what restores it); the manifest does not.
    const hash = new RegExp(`ALTER ROLE ${owner} WITH .*PASSWORD '(SCRAM-SHA-256[^']+)'`).exec(
      object.toString('utf8'),
    )?.[1];
    expect(hash).toBeDefined();
    expect(readFileSync(join(dir, keys.globalsManifest), 'utf8')).not.toContain(hash);
    expect(readFileSync(join(dir, keys.manifest), 'utf8')).not.toContain(hash);
  });

  it('as a user who cannot read pg_authid (as on RDS): roles without passwords, and the manifest says so', async () => {
    const dir = join(work, 'plain-user');
    const manifest = await dumpAs(owner, dir, new Date('2026-06-21T02:00:00Z'));
    const keys = keysFor('', manifest.id);
    const globals = parseGlobalsManifest(JSON.parse(readFileSync(join(dir, keys.globalsManifest), 'utf8')));
    expect(globals.rolePasswords).toBe('omitted');
    expect(globals.roles).toContain(owner);
    expect(readFileSync(join(dir, keys.globals), 'utf8')).not.toMatch(/PASSWORD|SCRAM/);
  });
});
