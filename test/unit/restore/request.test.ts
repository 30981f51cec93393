import { describe, expect, it } from 'vitest';
import { InvalidRestoreRequestError } from '../../../lib/domain/errors.js';
import { identifierProblem, parseRestoreRequest, selectorOf } from '../../../lib/restore/request.js';

function refusal(raw: unknown): string {
  try {
    parseRestoreRequest(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRestoreRequestError);
    return (error as Error).message;
  }
  throw new Error('the request was accepted');
}

describe('parseRestoreRequest', () => {
  it('accepts a restore of the latest backup into a new database, by schema', () => {
    const r = parseRestoreRequest({
      database: 'orders',
      backup: 'latest',
      targetDatabase: 'orders_restored',
      schemas: ['core', 'Reporting Ünïcode', 'core'],
      jobs: 2,
    });
    expect(r).toEqual({
      mode: 'restore',
      database: 'orders',
      backup: 'latest',
      targetDatabase: 'orders_restored',
      schemas: ['core', 'Reporting Ünïcode'],
      jobs: 2,
      replace: false,
      withGlobals: false,
    });
    expect(selectorOf(r)).toEqual({ kind: 'latest' });
  });

  it('takes the globals, owner and privilege choices as true or false, refusing anything else', () => {
    const base = { database: 'orders', targetDatabase: 'orders_restored' };
    expect(
      parseRestoreRequest({ ...base, withGlobals: true, noOwner: false, noPrivileges: true }),
    ).toMatchObject({
      withGlobals: true,
      noOwner: false,
      noPrivileges: true,
    });
    expect(refusal({ ...base, withGlobals: 'yes' })).toMatch(/^withGlobals: expected true or false/);
    expect(refusal({ ...base, noOwner: 1 })).toMatch(/^noOwner: expected true or false/);
  });

  it('accepts a verify of one backup id, and of the newest before a time', () => {
    expect(
      parseRestoreRequest({ mode: 'verify', database: 'orders', backup: 'orders-20260620T020000Z' }),
    ).toMatchObject({
      mode: 'verify',
      backup: 'orders-20260620T020000Z',
    });
    const before = parseRestoreRequest({
      mode: 'verify',
      database: 'orders',
      before: '2026-06-20T15:00:00Z',
    });
    expect(selectorOf(before)).toEqual({ kind: 'latest', before: new Date('2026-06-20T15:00:00Z') });
  });

  it('refuses a target that is the source database, even when asked to replace it', () => {
    expect(refusal({ database: 'orders', targetDatabase: 'orders' })).toMatch(
      /^targetDatabase: is the source/,
    );
    expect(refusal({ database: 'orders', targetDatabase: 'orders', replace: true })).toMatch(
      /source database/,
    );
  });

  it("refuses the server's own databases and verify's scratch names as targets", () => {
    expect(refusal({ database: 'orders', targetDatabase: 'template1' })).toMatch(/^targetDatabase:/);
    expect(refusal({ database: 'orders', targetDatabase: 'postgres', replace: true })).toMatch(
      /^targetDatabase:/,
    );
    expect(refusal({ database: 'orders', targetDatabase: 'pgbp_verify_orders_1' })).toMatch(/reserved/);
  });

  it('refuses a schema name with a quote in it, naming the field', () => {
    expect(
      refusal({ database: 'orders', targetDatabase: 'x', schemas: ['core', 'a"; drop schema core; --'] }),
    ).toMatch(/^schemas\[1\]: .* contains a quote/);
    expect(refusal({ database: 'orders', targetDatabase: 'x', schemas: ["o'brien"] })).toMatch(
      /^schemas\[0\]/,
    );
  });

  it('refuses a malformed time, a malformed id, and a time given with an id', () => {
    expect(refusal({ database: 'orders', targetDatabase: 'x', before: 'yesterday' })).toMatch(
      /^before: malformed time/,
    );
    expect(refusal({ database: 'orders', targetDatabase: 'x', backup: 'orders-2026' })).toMatch(
      /^backup: malformed/,
    );
    expect(
      refusal({
        database: 'orders',
        targetDatabase: 'x',
        backup: 'orders-20260620T020000Z',
        before: '2026-06-21',
      }),
    ).toMatch(/^before: applies to "latest" only/);
    expect(refusal({ database: 'orders', targetDatabase: 'x', backup: 'billing-20260620T020000Z' })).toMatch(
      /belongs to database billing/,
    );
  });

  it('refuses what verify cannot mean: a target, schemas, replace', () => {
    expect(refusal({ mode: 'verify', database: 'orders', targetDatabase: 'x' })).toMatch(/^targetDatabase:/);
    expect(refusal({ mode: 'verify', database: 'orders', schemas: ['core'] })).toMatch(/^schemas:/);
    expect(refusal({ mode: 'verify', database: 'orders', replace: true })).toMatch(/^replace:/);
  });

  it('refuses a missing target, bad jobs, unknown fields and unknown modes', () => {
    expect(refusal({ database: 'orders' })).toMatch(/^targetDatabase: is required/);
    expect(refusal({ database: 'orders', targetDatabase: 'x', jobs: 0 })).toMatch(/^jobs:/);
    expect(refusal({ database: 'orders', targetDatabase: 'x', jobs: 2.5 })).toMatch(/^jobs:/);
    expect(refusal({ database: 'orders', targetDatabase: 'x', target: 'y' })).toMatch(
      /^target: is not a field/,
    );
    expect(refusal({ mode: 'drop', database: 'orders' })).toMatch(/^mode:/);
    expect(refusal('orders')).toMatch(/must be an object/);
  });
});

describe('identifierProblem', () => {
  it('accepts spaces and non-ASCII letters, refuses what does not survive quoting or PostgreSQL', () => {
    expect(identifierProblem('Reporting Ünïcode')).toBeUndefined();
    expect(identifierProblem('')).toBe('is empty');
    expect(identifierProblem('a\u0000b')).toBe('contains a control character');
    expect(identifierProblem('back\\slash')).toBe('contains a quote or a backslash');
    expect(identifierProblem(' padded')).toBe('starts or ends with white space');
    // 32 two-byte letters are 64 bytes: PostgreSQL would silently cut the name.
    expect(identifierProblem('é'.repeat(32))).toBe('is longer than 63 bytes');
    expect(identifierProblem('é'.repeat(31))).toBeUndefined();
  });
});
