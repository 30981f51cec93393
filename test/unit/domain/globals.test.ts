import { describe, expect, it } from 'vitest';
import {
  decideGlobalsStatement,
  describeStatement,
  type GlobalsState,
  globalsInventory,
  parseGlobals,
} from '../../../lib/domain/globals.js';
import { splitStatements } from '../../../lib/domain/sql-text.js';

// The shape pg_dumpall --globals-only writes (PostgreSQL 15), with names that test the quoting.
const SCRIPT = `--
-- PostgreSQL database cluster dump
--

\\restrict AbCdEf123

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy';
CREATE ROLE "odd;name ""TO"" x";
ALTER ROLE "odd;name ""TO"" x" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
CREATE ROLE reader;
ALTER ROLE reader WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE reader IS 'reads; never writes';

--
-- User Configurations
--

ALTER ROLE app SET search_path TO 'app', 'public';
ALTER ROLE reader IN DATABASE shop SET statement_timeout TO '5s';

--
-- Role memberships
--

GRANT reader TO app GRANTED BY postgres;
GRANT "odd;name ""TO"" x" TO reader WITH ADMIN OPTION GRANTED BY gone_admin;
GRANT reader TO postgres GRANTED BY postgres;

--
-- Tablespaces
--

CREATE TABLESPACE fast OWNER app LOCATION '/srv/fast';
GRANT ALL ON TABLESPACE fast TO reader;

\\unrestrict AbCdEf123
`;

function state(existing: string[], created: string[] = []): GlobalsState {
  return {
    existingRoles: new Set(existing),
    existingTablespaces: new Set(['pg_default']),
    createdRoles: new Set(created),
    createdTablespaces: new Set(),
  };
}

describe('reading pg_dumpall --globals-only', () => {
  it('splits at semicolons outside quotes and leaves out comments and psql meta-commands', () => {
    const statements = splitStatements(SCRIPT);
    expect(statements.some((s) => s.includes('restrict'))).toBe(false);
    expect(statements.some((s) => s.startsWith('--'))).toBe(false);
    expect(statements).toContain(`COMMENT ON ROLE reader IS 'reads; never writes'`);
    expect(statements).toContain(`CREATE ROLE "odd;name ""TO"" x"`);
    expect(statements).toHaveLength(19);
  });

  it('names the roles and tablespaces the script creates', () => {
    expect(globalsInventory(parseGlobals(SCRIPT))).toEqual({
      roles: ['app', 'odd;name "TO" x', 'postgres', 'reader'],
      tablespaces: ['fast'],
    });
  });

  it('reads a membership with its member and grantor, quoted names included', () => {
    const memberships = parseGlobals(SCRIPT).filter((s) => s.kind === 'membership');
    expect(memberships.map((m) => [m.roles, m.member, m.grantor])).toEqual([
      [['reader'], 'app', 'postgres'],
      [['odd;name "TO" x'], 'reader', 'gone_admin'],
      [['reader'], 'postgres', 'postgres'],
    ]);
  });
});

describe('applying globals to a server', () => {
  it('creates the missing roles, with their attributes, settings and comments, and leaves existing ones alone', () => {
    const statements = parseGlobals(SCRIPT);
    const s = state(['postgres'], ['app', 'reader', 'odd;name "TO" x']);
    const applied = statements.filter((x) => decideGlobalsStatement(x, s).apply).map(describeStatement);
    expect(applied).toContain('CREATE ROLE app');
    expect(applied).toContain('ALTER ROLE app WITH (attributes)');
    expect(applied).toContain('ALTER ROLE reader SET (a setting)');
    expect(applied).toContain('COMMENT ON ROLE reader');
    expect(applied).toContain('GRANT reader TO app');
    expect(applied).not.toContain('CREATE ROLE postgres');
    expect(applied).not.toContain('ALTER ROLE postgres WITH (attributes)');
    // postgres exists: it gains no membership either.
    expect(applied).not.toContain('GRANT reader TO postgres');
  });

  it('never alters a role the restore did not create', () => {
    const attributes = parseGlobals(SCRIPT).find((x) => x.kind === 'role-attributes');
    const decision = decideGlobalsStatement(attributes as never, state(['postgres', 'app']));
    expect(decision).toEqual({ apply: false, reason: 'role app was not created by this restore' });
  });

  it('leaves out a grantor the target lacks, keeping the membership and its options', () => {
    const odd = parseGlobals(SCRIPT).filter((x) => x.kind === 'membership')[1];
    const decision = decideGlobalsStatement(odd as never, state(['postgres'], ['reader', 'odd;name "TO" x']));
    expect(decision).toEqual({ apply: true, sql: 'GRANT "odd;name ""TO"" x" TO reader WITH ADMIN OPTION' });
  });

  it('creates a tablespace only when missing, and grants on it only then', () => {
    const statements = parseGlobals(SCRIPT);
    const create = statements.find((x) => x.kind === 'create-tablespace');
    const grant = statements.find((x) => x.kind === 'tablespace-detail');
    const fresh = state(['postgres']);
    expect(decideGlobalsStatement(create as never, fresh).apply).toBe(true);
    expect(decideGlobalsStatement(grant as never, fresh).apply).toBe(false);
    expect(
      decideGlobalsStatement(create as never, { ...fresh, existingTablespaces: new Set(['fast']) }).apply,
    ).toBe(false);
  });

  it('describes statements by kind and name, never with a password', () => {
    const described = parseGlobals(SCRIPT).map(describeStatement).join('\n');
    expect(described).not.toContain('SCRAM');
    expect(described).not.toContain('PASSWORD');
  });
});
