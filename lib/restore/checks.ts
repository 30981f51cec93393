import type { Client } from 'pg';
import type { Assertion } from '../config.js';
import { evaluateAssertion } from '../domain/assertions.js';
import { redact } from '../domain/redact.js';
import {
  type CheckResult,
  checkGrants,
  checkOwners,
  checkTablesPresent,
  type ManifestTable,
  type QueryOutcome,
  type TableAccess,
  tableKey,
  tablesInScope,
} from '../domain/restore-checks.js';
import type { RestoreReport } from '../domain/verify-report.js';
import type { ArchiveCounts } from '../postgres/archive-counts.js';
import { pgClient, quoteIdent } from '../postgres/pg-tools.js';
import { backupRowsOf, compareWithArchive } from './archive-checks.js';
import type { RestoreContext } from './context.js';

const ASSERTION_TIMEOUT = '10min';

export interface CheckOutcome {
  readonly checks: CheckResult[];
  readonly tables: RestoreReport['tables'];
}

export async function runAssertion(client: Client, assertion: Assertion): Promise<QueryOutcome> {
  try {
    // Read only, so an assertion cannot change what it checks; bounded, so a bad one cannot hang the drill.
    await client.query('begin read only');
    await client.query(`set local statement_timeout = '${ASSERTION_TIMEOUT}'`);
    const result = await client.query({ text: assertion.sql, rowMode: 'array' });
    const last = Array.isArray(result) ? result[result.length - 1] : result;
    const row = (last?.rows?.[0] as unknown[] | undefined) ?? undefined;
    return { value: row ? row[0] : null };
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    await client.query('rollback').catch(() => {});
  }
}

/**
 * The checks of a restored database: it answers a query, every table in scope is there and holds
 * exactly the rows the archive holds for it (at content depth: exactly the same rows), and the
 * configured assertions hold.
 */
export async function checkRestored(
  ctx: RestoreContext,
  target: string,
  counts: ArchiveCounts,
): Promise<CheckOutcome> {
  const { manifest, deps, request } = ctx;
  const client = await pgClient({ ...deps.connection, database: target });
  const checks: CheckResult[] = [];
  try {
    await client.connect();
    const one = await client.query<{ one: number }>('select 1 as one');
    checks.push({
      name: 'the restored database answers a query',
      kind: 'connect',
      passed: one.rows[0]?.one === 1,
      query: 'select 1',
      value: one.rows[0]?.one ?? null,
    });
  } catch (error) {
    await client.end().catch(() => {});
    checks.push({
      name: 'the restored database answers a query',
      kind: 'connect',
      passed: false,
      query: 'select 1',
      value: redact((error as Error).message, ctx.secrets),
    });
    return { checks, tables: [] };
  }
  try {
    const inScope = tablesInScope<ManifestTable>(manifest.tables, request.schemas);
    const present = await client.query<{ schema: string; name: string; oid: string }>(
      `select n.nspname as schema, c.relname as name, c.oid::text as oid
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')`,
    );
    const oids = new Map(present.rows.map((r) => [tableKey(r), r.oid]));
    checks.push(checkTablesPresent(inScope, new Set(oids.keys())));
    // Owners and grants, where the restore kept them: as the source had them when dumped.
    if (ctx.ownership?.owners === 'kept' && inScope.some((t) => t.owner !== undefined)) {
      const access = await client.query<{
        schema: string;
        name: string;
        owner: string;
        acl: string[] | null;
      }>(
        `select n.nspname as schema, c.relname as name, pg_get_userbyid(c.relowner) as owner, c.relacl::text[] as acl
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')`,
      );
      const restored = new Map<string, TableAccess>(access.rows.map((r) => [tableKey(r), r]));
      checks.push(checkOwners(inScope, restored));
      if (ctx.ownership.privileges === 'kept') checks.push(checkGrants(inScope, restored));
    }

    const rows = new Map<string, number>();
    const partitions = new Map<string, string[]>();
    const leaves = inScope.filter((t) => t.kind === 'table' && oids.has(tableKey(t)));
    for (const t of leaves) {
      const r = await client.query<{ n: string }>(
        `select count(*) as n from only ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
      );
      rows.set(tableKey(t), Number(r.rows[0]?.n ?? 0));
    }
    for (const t of inScope.filter((x) => x.kind === 'partitioned table' && oids.has(tableKey(x)))) {
      // A partitioned table holds its partitions' rows: add up the leaves, counted once each.
      const tree = await client.query<{ schema: string; name: string }>(
        `select n.nspname as schema, c.relname as name
           from pg_partition_tree($1::oid) p join pg_class c on c.oid = p.relid
           join pg_namespace n on n.oid = c.relnamespace
          where p.isleaf`,
        [oids.get(tableKey(t))],
      );
      let total = 0;
      partitions.set(
        tableKey(t),
        tree.rows.map((leaf) => tableKey(leaf)),
      );
      for (const leaf of tree.rows) {
        let n = rows.get(tableKey(leaf));
        if (n === undefined) {
          const r = await client.query<{ n: string }>(
            `select count(*) as n from only ${quoteIdent(leaf.schema)}.${quoteIdent(leaf.name)}`,
          );
          n = Number(r.rows[0]?.n ?? 0);
        }
        total += n;
      }
      rows.set(tableKey(t), total);
    }
    const compared = await compareWithArchive({
      manifest,
      inScope,
      schemas: request.schemas,
      restored: rows,
      counts,
      depth: ctx.depth,
      tolerance: deps.policy.rowTolerance,
      connection: { ...deps.connection, database: target },
      env: deps.env,
      spawn: ctx.spawn,
      ...(deps.signal ? { signal: deps.signal } : {}),
    });
    checks.push(...compared.checks);
    ctx.warnings.push(...compared.warnings);

    if (request.schemas.length > 0 && deps.assertions.length > 0) {
      ctx.warnings.push(
        `${deps.assertions.length} configured assertion(s) not run: a restore of some schemas only is not the database they describe`,
      );
    } else {
      for (const assertion of deps.assertions) {
        checks.push(evaluateAssertion(assertion, await runAssertion(client, assertion)));
      }
    }
    const tables = inScope.map((t) => {
      const backupRows = backupRowsOf(t, compared.backupRows, partitions);
      return {
        schema: t.schema,
        name: t.name,
        kind: t.kind,
        rows: rows.get(tableKey(t)) ?? null,
        ...(backupRows !== undefined ? { backupRows } : {}),
        estimate: t.rowEstimate,
      };
    });
    return { checks, tables };
  } catch (error) {
    // A check that cannot run has not passed; the report says what stopped it.
    checks.push({
      name: 'the checks could run to the end',
      kind: 'connect',
      passed: false,
      value: redact((error as Error).message, ctx.secrets),
    });
    return { checks, tables: [] };
  } finally {
    await client.end().catch(() => {});
  }
}
