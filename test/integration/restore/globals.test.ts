import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreReport } from '../../../lib/domain/verify-report.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { runCli } from '../../support/cli.js';
import { createDatabase, dropDatabase, uniqueDbName, withClient } from '../../support/pg.js';
import {
  postgresDir,
  type ScratchCluster,
  scratchRoot,
  startPasswordCluster,
} from '../../support/scratch-cluster.js';
import { dump } from './fixture.js';

// Roles are cluster-wide on the shared server: this file creates its own, uniquely named, and
// drops exactly those. The target is a fresh cluster of the test's own, with no role but postgres.
const s = randomBytes(4).toString('hex');
const app = `pgbp_t_app_${s}`;
const readonly = `pgbp_t_ro_${s}`;
const reader = `pgbp_t_reader_${s}`;
const kept = `pgbp_t_kept_${s}`;
const appPassword = `app-${randomBytes(8).toString('hex')}`;
const ours = [app, readonly, reader, kept];
const space = `pgbp_t_ts_${s}`;
const spaceRoot = scratchRoot();
const source = uniqueDbName('roles');
const work = mkdtempSync(join(tmpdir(), 'pgbp-restore-globals-'));
const storeDir = join(work, 'store');
let target: ScratchCluster & { readonly password: string };
let appHash: string;

beforeAll(async () => {
  await withClient('postgres', (c) =>
    c.query(`
      create role ${app} login password '${appPassword}';
      alter role ${app} set statement_timeout = '7s';
      create role ${readonly} nologin;
      create role ${reader} login;
      create role ${kept} login;
      grant ${readonly} to ${reader};
      grant ${readonly} to ${kept};`),
  );
  appHash = await withClient('postgres', async (c) => {
    const r = await c.query<{ h: string }>('select rolpassword as h from pg_authid where rolname = $1', [
      app,
    ]);
    return r.rows[0]?.h ?? '';
  });
  // A tablespace of the source (cluster-wide too: this file's own), whose directory the fresh
  // server cannot have: the restore must still succeed, in the default tablespace, and say so.
  await withClient('postgres', (c) =>
    c.query(`create tablespace ${space} owner ${app} location '${postgresDir(spaceRoot, 'ts')}'`),
  );
  await createDatabase(source);
  await withClient(source, (c) =>
    c.query(`
      create schema shop authorization ${app};
      set role ${app};
      create table shop.items (id int primary key, name text not null);
      create table shop.orders (id serial primary key, item int not null references shop.items);
      grant usage on schema shop to ${readonly};
      grant select on all tables in schema shop to ${readonly};
      insert into shop.items values (1, 'tea'), (2, 'coffee');
      insert into shop.orders (item) values (1), (2), (2);
      create table shop.cold (id int) tablespace ${space};
      reset role;`),
  );
  await dump(new FileStore(storeDir), source);
  target = await startPasswordCluster(`pg-${randomBytes(8).toString('hex')}`);
  // A role the target has already, set up otherwise than in the source: it must stay as it is.
  target.sql(`create role ${kept} login connection limit 3`);
}, 120_000);

afterAll(async () => {
  target?.remove();
  await dropDatabase(source);
  await withClient('postgres', (c) => c.query(`drop tablespace if exists ${space}`));
  await withClient('postgres', (c) => c.query(ours.map((r) => `drop role if exists ${r};`).join('\n')));
  rmSync(spaceRoot, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

/** `pgbp restore` of the source's latest backup into the fresh cluster, as an operator runs it. */
async function restoreIntoTarget(targetDb: string, ...flags: string[]) {
  const result = await runCli(
    [
      'restore',
      'latest',
      '--database',
      source,
      '--target-db',
      targetDb,
      '--store',
      `file://${storeDir}`,
      '--json',
      ...flags,
    ],
    {
      env: {
        PGHOST: '127.0.0.1',
        PGPORT: String(target.port),
        PGUSER: 'postgres',
        PGPASSWORD: target.password,
      },
    },
  );
  // The password hash travels inside the globals object only: never in what a restore says.
  expect(result.stdout + result.stderr).not.toContain(appHash);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as RestoreReport;
}

async function query<T extends pg.QueryResultRow>(
  where: { port?: number; password?: string; user?: string; database: string },
  sql: string,
): Promise<T[]> {
  const client = new pg.Client({ host: '127.0.0.1', ...where });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

const onTarget = (database: string, user = 'postgres', password?: string) => ({
  port: target.port,
  user,
  password: password ?? target.password,
  database,
});

const ACCESS = `select c.relkind::text as kind, n.nspname || '.' || c.relname as name, pg_get_userbyid(c.relowner) as owner,
                       array_to_string(array(select unnest(c.relacl)::text order by 1), ',') as acl
                  from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'shop' and c.relkind in ('r', 'S')
                union all
                select 'n', nspname, pg_get_userbyid(nspowner), array_to_string(array(select unnest(nspacl)::text order by 1), ',')
                  from pg_namespace where nspname = 'shop'
                 order by 1, 2`;
const MEMBERSHIPS = `select r.rolname as role, m.rolname as member, a.admin_option as admin
                       from pg_auth_members a join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member
                      where m.rolname in ('${app}', '${readonly}', '${reader}', '${kept}') order by 1, 2`;
const ROLES = `select rolname, rolcanlogin, rolconnlimit, rolconfig from pg_roles
                where rolname in ('${app}', '${readonly}', '${reader}', '${kept}') order by 1`;

describe('restore into a fresh server', () => {
  it('without --with-globals: restores, and names every owner and grant it had to drop', async () => {
    const report = await restoreIntoTarget('shop_plain');
    expect(report.passed).toBe(true);
    expect(report.ownership).toMatchObject({
      owners: 'dropped',
      privileges: 'dropped',
      missingRoles: [readonly, app].sort(),
    });
    expect(report.ownership?.droppedOwners).toEqual([
      {
        role: app,
        missing: true,
        objects: expect.arrayContaining([
          'SCHEMA shop',
          'TABLE shop.items',
          'TABLE shop.orders',
          'SEQUENCE shop.orders_id_seq',
        ]),
      },
    ]);
    expect(report.ownership?.droppedPrivileges.map((p) => p.object).sort()).toEqual([
      'privileges on SCHEMA shop',
      'privileges on TABLE items in schema shop',
      'privileges on TABLE orders in schema shop',
    ]);
    expect(report.warnings.join('\n')).toMatch(
      new RegExp(
        `owners dropped: roles missing in the target server \\(${[readonly, app].sort().join(', ')}\\)`,
      ),
    );
    const access = await query<{ owner: string; acl: string }>(onTarget('shop_plain'), ACCESS);
    expect(new Set(access.map((a) => a.owner))).toEqual(new Set(['postgres']));
    expect(report.ownership).toMatchObject({
      missingTablespaces: [space],
      droppedTablespaces: [{ tablespace: space, objects: ['TABLE shop.cold'] }],
    });
    expect(report.warnings.join('\n')).toContain(
      `tablespaces dropped: missing in the target server (${space})`,
    );
  });

  it('with --with-globals: the source owners, grants, memberships and settings, and the application can work', async () => {
    const report = await restoreIntoTarget('shop', '--with-globals');
    expect(report.passed).toBe(true);
    expect(report.globals).toMatchObject({ rolePasswords: 'included' });
    expect(report.globals?.rolesCreated).toEqual(expect.arrayContaining([app, readonly, reader]));
    expect(report.globals?.rolesLeftAlone).toEqual(expect.arrayContaining(['postgres', kept]));
    expect(report.ownership).toMatchObject({ owners: 'kept', privileges: 'kept', missingRoles: [] });
    expect(report.checks.filter((c) => c.kind === 'owners' || c.kind === 'grants')).toMatchObject([
      { kind: 'owners', passed: true },
      { kind: 'grants', passed: true },
    ]);
    // The tablespace's directory is the source's: creating it fails, is reported, and the rest goes on.
    expect(report.globals?.failed).toEqual([
      expect.stringMatching(new RegExp(`^CREATE TABLESPACE ${space}: `)),
    ]);
    expect(report.ownership).toMatchObject({ missingTablespaces: [space] });

    const here = { port: undefined, user: 'postgres', database: source };
    expect(await query(onTarget('shop'), ACCESS)).toEqual(await query(here, ACCESS));
    const sourceMemberships = (await query<{ member: string }>(here, MEMBERSHIPS)).filter(
      (m) => m.member !== kept,
    );
    expect(await query(onTarget('postgres'), MEMBERSHIPS)).toEqual(sourceMemberships);
    const roles = await query<{ rolname: string }>(onTarget('postgres'), ROLES);
    const sourceRoles = await query<{ rolname: string }>(here, ROLES);
    expect(roles.filter((r) => r.rolname !== kept)).toEqual(sourceRoles.filter((r) => r.rolname !== kept));
    // The role the target had already is as it was: no new membership, its own connection limit.
    expect(roles.find((r) => r.rolname === kept)).toMatchObject({ rolconnlimit: 3 });

    // The application role logs in with its own password and reads and writes its tables.
    const asApp = onTarget('shop', app, appPassword);
    await query(asApp, `insert into shop.items values (3, 'cocoa')`);
    await query(asApp, `update shop.orders set item = 3 where id = 1`);
    expect(await query(asApp, 'select count(*)::int as n from shop.items')).toEqual([{ n: 3 }]);
    expect(await query(asApp, 'show statement_timeout')).toEqual([{ statement_timeout: '7s' }]);
    // The read-only role reads and cannot write.
    target.sql(`alter role ${reader} password 'reader-pw'`);
    const asReader = onTarget('shop', reader, 'reader-pw');
    expect(await query(asReader, 'select count(*)::int as n from shop.orders')).toEqual([{ n: 3 }]);
    await expect(query(asReader, `insert into shop.items values (9, 'x')`)).rejects.toThrow(
      /permission denied/,
    );
  });

  it('without --with-globals once the roles exist: keeps owners and grants', async () => {
    const report = await restoreIntoTarget('shop_again');
    expect(report.ownership).toMatchObject({ owners: 'kept', privileges: 'kept', missingRoles: [] });
    expect(
      report.checks.filter((c) => c.kind === 'owners' || c.kind === 'grants').every((c) => c.passed),
    ).toBe(true);
    expect(await query(onTarget('shop_again'), ACCESS)).toEqual(await query(onTarget('shop'), ACCESS));
  });

  it('--no-owner and --no-privileges leave them out when asked, and say so', async () => {
    const report = await restoreIntoTarget('shop_bare', '--no-owner', '--no-privileges');
    expect(report.ownership).toMatchObject({ owners: 'not restored', privileges: 'not restored' });
    const access = await query<{ owner: string; acl: string }>(onTarget('shop_bare'), ACCESS);
    expect(access.every((a) => a.owner === 'postgres' && a.acl === '')).toBe(true);
  });
});

describe('the drill', () => {
  it("restores the backup's roles into its scratch server and checks the source's owners and grants", async () => {
    const result = await runCli([
      'verify',
      'latest',
      '--database',
      source,
      '--store',
      `file://${storeDir}`,
      '--json',
    ]);
    expect(result.stdout + result.stderr).not.toContain(appHash);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as RestoreReport;
    expect(report.ownership).toMatchObject({ owners: 'kept', privileges: 'kept' });
    expect(report.checks.filter((c) => c.kind === 'owners' || c.kind === 'grants')).toMatchObject([
      { kind: 'owners', passed: true, value: '3 of 3 tables' },
      { kind: 'grants', passed: true, value: '3 of 3 tables' },
    ]);
  });
});
