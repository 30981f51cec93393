import { RestoreFailedError } from '../domain/errors.js';
import { type OwnershipPlan, ownershipWarnings, planOwnership } from '../domain/ownership.js';
import { redact } from '../domain/redact.js';
import type { ArchiveToc } from '../postgres/custom-archive.js';
import { describeConnection, pgClient } from '../postgres/pg-tools.js';
import type { RestoreContext } from './context.js';

async function rolesOf(ctx: RestoreContext): Promise<{ roles: Set<string>; tablespaces: Set<string> }> {
  const client = await pgClient(ctx.deps.connection, ctx.maintenance);
  try {
    await client.connect();
    const r = await client.query<{ rolname: string }>('select rolname from pg_roles');
    const t = await client.query<{ spcname: string }>('select spcname from pg_tablespace');
    return {
      roles: new Set(r.rows.map((row) => row.rolname)),
      tablespaces: new Set(t.rows.map((row) => row.spcname)),
    };
  } catch (error) {
    throw new RestoreFailedError(
      `cannot read the roles of ${describeConnection({ ...ctx.deps.connection, database: ctx.maintenance })}: ${redact((error as Error).message, ctx.secrets)}`,
      { cause: error },
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The ownership step (after the globals, before the database is created): owners and privileges
 * are kept unless the request (or the policy) leaves them out, or a role they name is missing in
 * the target server; then that part is dropped and the warnings name every owner and grant left
 * out. Without a readable table of contents the asked flags stand, and pg_restore itself stops
 * at a missing role.
 */
export async function planRestoreOwnership(
  ctx: RestoreContext,
  toc: ArchiveToc | undefined,
): Promise<OwnershipPlan> {
  const { request, deps } = ctx;
  const asked = {
    noOwner: request.noOwner ?? deps.policy.noOwner,
    noPrivileges: request.noPrivileges ?? deps.policy.noPrivileges,
  };
  if (!toc) {
    ctx.warnings.push(
      "owners and privileges were not checked against the target's roles: the archive's table of contents could not be read",
    );
    return planOwnership([], new Set(), asked);
  }
  const target = await rolesOf(ctx);
  const plan = planOwnership(toc.entries, target.roles, asked, request.schemas, target.tablespaces);
  ctx.warnings.push(...ownershipWarnings(plan, deps.connection.user));
  return plan;
}
