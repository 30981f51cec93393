import { describe, expect, it } from 'vitest';
import { type ArchiveObject, planOwnership, rolesInPrivileges } from '../../../lib/domain/ownership.js';
import { checkGrants, checkOwners, type TableAccess } from '../../../lib/domain/restore-checks.js';

// TOC entries as pg_dump writes them for a schema and a table of `app`, readable by `ro`.
const objects: ArchiveObject[] = [
  { desc: 'SCHEMA', tag: 'shop', namespace: '', owner: 'app' },
  { desc: 'TABLE', tag: 'items', namespace: 'shop', owner: 'app' },
  { desc: 'INDEX', tag: 'items_pkey', namespace: 'shop', owner: 'gone' },
  { desc: 'TABLE DATA', tag: 'items', namespace: 'shop', owner: 'app' },
  {
    desc: 'ACL',
    tag: 'TABLE items',
    namespace: 'shop',
    owner: 'app',
    defn: 'GRANT SELECT ON TABLE shop.items TO ro;\n',
  },
];

describe('roles named by privileges', () => {
  it('reads grantees, revokees, grantors, roles acted as, and default privileges', () => {
    expect(
      rolesInPrivileges('GRANT SELECT,INSERT ON TABLE shop."to" TO ro, "Odd Name" WITH GRANT OPTION;'),
    ).toEqual(['ro', 'Odd Name']);
    expect(rolesInPrivileges('REVOKE ALL ON TABLE t FROM PUBLIC;\nREVOKE ALL ON TABLE t FROM app;')).toEqual([
      'app',
    ]);
    expect(
      rolesInPrivileges(
        'SET SESSION AUTHORIZATION boss;\nGRANT SELECT ON TABLE t TO GROUP ro;\nRESET SESSION AUTHORIZATION;',
      ),
    ).toEqual(['boss', 'ro']);
    expect(
      rolesInPrivileges('ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA shop GRANT SELECT ON TABLES TO ro;'),
    ).toEqual(['app', 'ro']);
    expect(rolesInPrivileges('GRANT USAGE ON SCHEMA s TO ro GRANTED BY boss;')).toEqual(['ro', 'boss']);
  });
});

describe('keeping owners and privileges', () => {
  it('keeps both when the target has every role, whatever owns an index', () => {
    const plan = planOwnership(objects, new Set(['app', 'ro']), { noOwner: false, noPrivileges: false });
    expect(plan).toMatchObject({
      noOwner: false,
      noPrivileges: false,
      owners: 'kept',
      privileges: 'kept',
      missingRoles: [],
    });
  });

  it('drops owners when an owner is missing, naming each object, and keeps privileges whose roles exist', () => {
    const plan = planOwnership(objects, new Set(['ro']), { noOwner: false, noPrivileges: false });
    expect(plan).toMatchObject({ noOwner: true, owners: 'dropped', missingRoles: ['app'] });
    expect(plan.droppedOwners).toEqual([
      { role: 'app', missing: true, objects: ['SCHEMA shop', 'TABLE shop.items'] },
    ]);
    expect(plan).toMatchObject({ noPrivileges: false, privileges: 'kept', droppedPrivileges: [] });
  });

  it('drops privileges when a grantee is missing, naming each entry left out', () => {
    const plan = planOwnership(objects, new Set(['app']), { noOwner: false, noPrivileges: false });
    expect(plan).toMatchObject({ owners: 'kept', privileges: 'dropped', missingRoles: ['ro'] });
    expect(plan.droppedPrivileges).toEqual([
      { object: 'privileges on TABLE items in schema shop', roles: ['ro'] },
    ]);
  });

  it('leaves them out when asked, without calling it a drop', () => {
    const plan = planOwnership(objects, new Set(), { noOwner: true, noPrivileges: true });
    expect(plan).toMatchObject({ owners: 'not restored', privileges: 'not restored', droppedOwners: [] });
  });
});

describe('tablespaces', () => {
  const spaced: ArchiveObject[] = [
    ...objects,
    { desc: 'TABLE', tag: 'archive', namespace: 'shop', owner: 'app', tablespace: 'cold' },
    { desc: 'INDEX', tag: 'archive_pkey', namespace: 'shop', owner: 'app', tablespace: 'cold' },
  ];
  const roles = new Set(['app', 'ro']);
  const asked = { noOwner: false, noPrivileges: false };

  it('keeps them when the target has them', () => {
    const plan = planOwnership(spaced, roles, asked, [], new Set(['pg_default', 'cold']));
    expect(plan).toMatchObject({ noTablespaces: false, missingTablespaces: [], droppedTablespaces: [] });
  });

  it('restores into the default tablespace when the target lacks one, naming what was to go there', () => {
    const plan = planOwnership(spaced, roles, asked, [], new Set(['pg_default']));
    expect(plan).toMatchObject({ noTablespaces: true, missingTablespaces: ['cold'], owners: 'kept' });
    expect(plan.droppedTablespaces).toEqual([
      { tablespace: 'cold', objects: ['TABLE shop.archive', 'INDEX shop.archive_pkey'] },
    ]);
  });
});

describe('the owner and grant checks', () => {
  const tables = [
    {
      schema: 'shop',
      name: 'items',
      kind: 'table' as const,
      rowEstimate: 2,
      owner: 'app',
      acl: ['app=arwdDxt/app', 'ro=r/app'],
    },
  ];
  it('pass on the source owner and grants, in any order, and fail naming the table otherwise', () => {
    const same = new Map<string, TableAccess>([
      ['shop.items', { owner: 'app', acl: ['ro=r/app', 'app=arwdDxt/app'] }],
    ]);
    expect(checkOwners(tables, same).passed).toBe(true);
    expect(checkGrants(tables, same).passed).toBe(true);
    const other = new Map<string, TableAccess>([['shop.items', { owner: 'postgres', acl: null }]]);
    expect(checkOwners(tables, other)).toMatchObject({
      passed: false,
      details: ['shop.items: owned by postgres, in the source by app'],
    });
    expect(checkGrants(tables, other)).toMatchObject({ passed: false });
  });
});
