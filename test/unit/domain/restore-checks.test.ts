import { describe, expect, it } from 'vitest';
import { evaluateAssertion, meetsExpectation } from '../../../lib/domain/assertions.js';
import {
  type AssertionSpec,
  checkContent,
  checkExactRowCounts,
  checkRowCounts,
  checkTablesPresent,
  describeFailedChecks,
  estimateWarnings,
  judgeRowCount,
  leftoverScratch,
  type ManifestTable,
  ROW_SLACK,
  scratchCreatedAt,
  scratchDatabaseName,
  scratchSuffix,
  tablesInScope,
} from '../../../lib/domain/restore-checks.js';

const txns: AssertionSpec = {
  name: 'transactions restored',
  sql: 'select count(*) from core.transactions',
  expect: { atLeast: 3000 },
};

function table(schema: string, name: string, rowEstimate: number): ManifestTable {
  return { schema, name, kind: 'table', rowEstimate };
}

describe('evaluateAssertion', () => {
  it('passes a count at the lower bound, given as text the way PostgreSQL returns bigint', () => {
    const check = evaluateAssertion(txns, { value: '3000' });
    expect(check).toMatchObject({
      name: 'transactions restored',
      passed: true,
      value: '3000',
      expected: 'at least 3000',
    });
  });

  it('fails a count below the bound and keeps the query and the value seen', () => {
    const check = evaluateAssertion(txns, { value: '2999' });
    expect(check).toMatchObject({ passed: false, query: txns.sql, value: '2999' });
  });

  it('fails when the query itself fails, saying why', () => {
    const check = evaluateAssertion(txns, { error: 'relation "core.transactions" does not exist' });
    expect(check.passed).toBe(false);
    expect(check.value).toContain('does not exist');
  });

  it('fails on a NULL or a value that is not a number when a number is expected', () => {
    expect(evaluateAssertion(txns, { value: null }).passed).toBe(false);
    expect(evaluateAssertion(txns, { value: 'many' }).passed).toBe(false);
  });

  it('combines bounds: both must hold', () => {
    const e = { atLeast: 10, atMost: 20 };
    expect(meetsExpectation(15, e)).toBe(true);
    expect(meetsExpectation(9, e)).toBe(false);
    expect(meetsExpectation('21', e)).toBe(false);
  });

  it('compares equals by the type of the expected value', () => {
    expect(meetsExpectation('42', { equals: 42 })).toBe(true);
    expect(meetsExpectation('EUR', { equals: 'EUR' })).toBe(true);
    expect(meetsExpectation('eur', { equals: 'EUR' })).toBe(false);
    expect(meetsExpectation(false, { equals: false })).toBe(true);
    expect(meetsExpectation(null, { equals: 'null' })).toBe(false);
  });

  it('takes only a real true for isTrue', () => {
    expect(meetsExpectation(true, { isTrue: true })).toBe(true);
    expect(meetsExpectation(false, { isTrue: true })).toBe(false);
    expect(meetsExpectation(1, { isTrue: true })).toBe(false);
    expect(meetsExpectation(null, { isTrue: true })).toBe(false);
  });
});

describe('judgeRowCount', () => {
  it('does not compare a never-analyzed table (estimate -1) or a zero estimate', () => {
    expect(judgeRowCount(-1, 0, 0.1)).toEqual({ compared: false, why: 'unknown estimate' });
    expect(judgeRowCount(0, 5000, 0.1)).toEqual({ compared: false, why: 'zero estimate' });
  });

  it('allows the configured fraction of the estimate either way', () => {
    expect(judgeRowCount(10_000, 10_900, 0.1)).toMatchObject({ compared: true, passed: true });
    expect(judgeRowCount(10_000, 9_000, 0.1)).toMatchObject({ compared: true, passed: true });
    expect(judgeRowCount(10_000, 8_999, 0.1)).toMatchObject({ compared: true, passed: false });
  });

  it('does not fail a small table on a few rows of churn', () => {
    expect(judgeRowCount(20, 20 + ROW_SLACK, 0.1)).toMatchObject({ passed: true });
    expect(judgeRowCount(20, 20 + ROW_SLACK + 1, 0.1)).toMatchObject({ passed: false });
  });

  it('catches a large table that came back empty', () => {
    expect(judgeRowCount(3000, 0, 0.1)).toMatchObject({ compared: true, passed: false });
  });
});

describe('checkRowCounts and checkTablesPresent', () => {
  const tables = [
    table('core', 'accounts', 200),
    table('core', 'transactions_2025', -1),
    table('auth', 'users', 50),
  ];

  it('names each table out of tolerance and counts the ones it could not compare', () => {
    const rows = new Map([
      ['core.accounts', 0],
      ['core.transactions_2025', 1234],
      ['auth.users', 50],
    ]);
    const check = checkRowCounts(tables, rows, 0.1);
    expect(check.passed).toBe(false);
    expect(check.details).toEqual(['core.accounts: 0 rows, estimate 200 (±20)']);
    expect(check.value).toBe('1 of 2 compared tables within tolerance, 1 without a usable estimate');
  });

  it('lists missing tables by schema-qualified name', () => {
    const check = checkTablesPresent(tables, new Set(['core.accounts', 'auth.users']));
    expect(check).toMatchObject({ passed: false, value: 2, details: ['missing: core.transactions_2025'] });
  });

  it('keeps only the tables of the restored schemas, or all when none are named', () => {
    expect(tablesInScope(tables, ['auth']).map((t) => t.name)).toEqual(['users']);
    expect(tablesInScope(tables, [])).toHaveLength(3);
  });
});

describe('checkExactRowCounts', () => {
  const tables: ManifestTable[] = [
    { schema: 'core', name: 'transactions', kind: 'partitioned table', rowEstimate: -1 },
    table('core', 'transactions_2025', -1),
    table('core', 'transactions_2026', 0),
    table('core', 'accounts', 5),
  ];
  const archived = new Map([
    ['core.transactions_2025', 1698],
    ['core.transactions_2026', 1302],
    ['core.accounts', 200],
  ]);

  it('passes when every table holds what the archive holds, whatever the estimates said', () => {
    const restored = new Map([...archived, ['core.transactions', 3000]]);
    const check = checkExactRowCounts(tables, restored, archived);
    expect(check).toMatchObject({
      kind: 'rows',
      passed: true,
      value: "3 of 3 tables hold exactly the backup's rows",
    });
  });

  it('fails on one row missing, naming the table and both counts', () => {
    const restored = new Map([...archived, ['core.accounts', 199]]);
    const check = checkExactRowCounts(tables, restored, archived);
    expect(check.passed).toBe(false);
    expect(check.details).toEqual(['core.accounts: 199 rows restored, 200 in the backup']);
    expect(describeFailedChecks([check])).toContain('core.accounts: 199 rows restored, 200 in the backup');
  });

  it('counts partitions once, not again through their partitioned table', () => {
    const restored = new Map([...archived, ['core.transactions', 2999]]);
    expect(checkExactRowCounts(tables, restored, archived).passed).toBe(true);
  });

  it('expects no rows of a table the archive has no data for, and compares a table only the archive knows', () => {
    const more = new Map([...archived, ['audit.events', 7]]);
    const restored = new Map([...archived, ['audit.events', 7], ['core.accounts', 200]]);
    const check = checkExactRowCounts(
      [...tables, table('audit', 'empty', 10)],
      new Map([...restored, ['audit.empty', 1]]),
      more,
    );
    expect(check.details).toEqual(['audit.empty: 1 rows restored, 0 in the backup']);
    expect(check.value).toBe("4 of 5 tables hold exactly the backup's rows");
  });

  it('names every offending table in the message, up to the last few dozen and how many more', () => {
    const many = Array.from({ length: 70 }, (_, i) => table('s', `t${String(i).padStart(2, '0')}`, -1));
    const counts = new Map(many.map((t) => [`s.${t.name}`, 1]));
    const check = checkExactRowCounts(many, new Map(many.map((t) => [`s.${t.name}`, 0])), counts);
    expect(check.details).toHaveLength(50);
    expect(check.details?.[48]).toBe('s.t48: 0 rows restored, 1 in the backup');
    expect(check.details?.[49]).toBe('and 21 more');
    const seven = checkExactRowCounts(
      many.slice(0, 7),
      new Map(many.map((t) => [`s.${t.name}`, 0])),
      new Map([...counts].slice(0, 7)),
    );
    const message = describeFailedChecks([seven]);
    for (let i = 0; i < 7; i += 1) expect(message).toContain(`s.t0${i}: 0 rows restored, 1 in the backup`);
  });

  it('compares only the restored schemas when a restore was limited to some', () => {
    const restored = new Map([['core.accounts', 200]]);
    const check = checkExactRowCounts(
      tablesInScope(tables, ['core']),
      restored,
      new Map([...archived, ['auth.users', 50]]),
      ['core'],
    );
    expect(check.passed).toBe(true);
  });
});

describe('checkContent', () => {
  const tables = [table('core', 'accounts', 200), table('auth', 'users', 50)];
  const archived = new Map([
    ['core.accounts', 'aaaa:200'],
    ['auth.users', 'bbbb:50'],
  ]);

  it('passes equal digests and fails a differing one, naming the table', () => {
    expect(checkContent(tables, archived, archived)).toMatchObject({ kind: 'content', passed: true });
    const check = checkContent(tables, new Map([...archived, ['auth.users', 'cccc:50']]), archived);
    expect(check.passed).toBe(false);
    expect(check.details).toEqual(["auth.users: its rows differ from the backup's"]);
  });
});

describe('estimateWarnings', () => {
  const fresh = (name: string, rowEstimate: number): ManifestTable => ({
    ...table('core', name, rowEstimate),
    statsFresh: true,
  });

  it('warns where the backup holds far fewer rows than fresh statistics claimed', () => {
    const warnings = estimateWarnings([fresh('accounts', 10000)], new Map([['core.accounts', 100]]), 0.1);
    expect(warnings).toEqual([
      'core.accounts: the backup holds 100 rows, fresh statistics of the source estimated 10000 when it was taken',
    ]);
  });

  it('says nothing where the statistics are stale or unknown, or the counts are near them', () => {
    const stale = { ...table('core', 'accounts', 10000), statsFresh: false };
    const unknown = table('core', 'ledger', 10000);
    const counts = new Map([
      ['core.accounts', 1],
      ['core.ledger', 1],
      ['core.near', 9500],
      ['core.more', 50000],
    ]);
    expect(
      estimateWarnings([stale, unknown, fresh('near', 10000), fresh('more', 10000)], counts, 0.1),
    ).toEqual([]);
  });
});

describe('describeFailedChecks', () => {
  it("gives each failed check's name, query and value, and leaves passed ones out", () => {
    const message = describeFailedChecks([
      evaluateAssertion(txns, { value: '12' }),
      evaluateAssertion({ ...txns, name: 'fine' }, { value: '5000' }),
    ]);
    expect(message).toBe(
      '"transactions restored" (select count(*) from core.transactions) saw "12", expected at least 3000',
    );
  });
});

describe('scratchDatabaseName', () => {
  it('is recognisable and never longer than PostgreSQL keeps (63 bytes)', () => {
    expect(scratchDatabaseName('orders', 'ab12cd34')).toBe('pgbp_verify_orders_ab12cd34');
    const long = scratchDatabaseName('d'.repeat(63), 'ab12cd34');
    expect(long).toHaveLength(63);
    expect(long.endsWith('_ab12cd34')).toBe(true);
  });
});

describe('leftover scratch databases', () => {
  const now = new Date('2026-11-28T12:00:00Z');
  const at = (hoursAgo: number) => new Date(now.getTime() - hoursAgo * 3600 * 1000);

  it('reads back when a scratch database was made from its name', () => {
    const name = scratchDatabaseName('orders', scratchSuffix(at(30), 'ab12cd34'));
    expect(name).toMatch(/^pgbp_verify_orders_[0-9a-z]{7}ab12cd34$/);
    expect(scratchCreatedAt(name)).toEqual(at(30));
  });

  it('finds only scratch databases older than a day, and never a name it did not make', () => {
    const old = scratchDatabaseName('orders', scratchSuffix(at(30), 'ab12cd34'));
    const young = scratchDatabaseName('orders', scratchSuffix(at(2), 'ab12cd34'));
    const longName = scratchDatabaseName('d'.repeat(63), scratchSuffix(at(48), '0000ffff'));
    const names = [old, young, longName, 'pgbp_verify_orders_ab12cd34', 'orders', 'pgbp_replace_ab12cd34'];
    expect(leftoverScratch(names, now)).toEqual([old, longName]);
  });
});
