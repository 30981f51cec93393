/**
 * The configured assertions of a verify (`SELECT count(*) … ≥ 3000`): what was expected, as
 * people read it, and whether a query's answer meets it. The other checks of a restored database
 * are in restore-checks.ts.
 */
import type { AssertionSpec, CheckResult, Expectation, QueryOutcome } from './restore-checks.js';

/** `at least 3000 and at most 5000`, as people read an expectation. */
export function describeExpectation(e: Expectation): string {
  const parts: string[] = [];
  if (e.atLeast !== undefined) parts.push(`at least ${e.atLeast}`);
  if (e.atMost !== undefined) parts.push(`at most ${e.atMost}`);
  if (e.equals !== undefined) parts.push(`equal to ${JSON.stringify(e.equals)}`);
  if (e.isTrue) parts.push('true');
  return parts.join(' and ');
}

/** A query result value as the report shows it: JSON scalars stay, anything else becomes text. */
export function reportableValue(value: unknown): string | number | boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value);
}

function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)))
    return Number(value);
  return undefined;
}

function asBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 't' || value === 'true') return true;
  if (value === 'f' || value === 'false') return false;
  return undefined;
}

/** Whether a value meets every part of an expectation (they combine with "and"). */
export function meetsExpectation(value: unknown, e: Expectation): boolean {
  if (e.atLeast !== undefined || e.atMost !== undefined) {
    const n = asNumber(value);
    if (n === undefined) return false;
    if (e.atLeast !== undefined && n < e.atLeast) return false;
    if (e.atMost !== undefined && n > e.atMost) return false;
  }
  if (e.equals !== undefined) {
    const ok =
      typeof e.equals === 'number'
        ? asNumber(value) === e.equals
        : typeof e.equals === 'boolean'
          ? asBoolean(value) === e.equals
          : value !== null && value !== undefined && String(value) === e.equals;
    if (!ok) return false;
  }
  if (e.isTrue && asBoolean(value) !== true) return false;
  return true;
}

/** Judges one configured assertion from what its query returned. A query that fails, fails the check. */
export function evaluateAssertion(assertion: AssertionSpec, outcome: QueryOutcome): CheckResult {
  const expected = describeExpectation(assertion.expect);
  if ('error' in outcome) {
    return {
      name: assertion.name,
      kind: 'assertion',
      passed: false,
      query: assertion.sql,
      value: `query failed: ${outcome.error}`,
      expected,
    };
  }
  return {
    name: assertion.name,
    kind: 'assertion',
    passed: meetsExpectation(outcome.value, assertion.expect),
    query: assertion.sql,
    value: reportableValue(outcome.value),
    expected,
  };
}
