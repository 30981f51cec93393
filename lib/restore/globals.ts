import { createHash } from 'node:crypto';
import { keysFor } from '../domain/backup-layout.js';
import { CorruptBackupError, InvalidRestoreRequestError, RestoreFailedError } from '../domain/errors.js';
import {
  decideGlobalsStatement,
  describeStatement,
  type GlobalsManifest,
  parseGlobals,
  parseGlobalsManifest,
} from '../domain/globals.js';
import { redact } from '../domain/redact.js';
import type { RestoreGlobals } from '../domain/verify-report.js';
import { describeConnection, pgClient } from '../postgres/pg-tools.js';
import { fetchFailed, type RestoreContext } from './context.js';

/** Whatever a server says about a statement, without a password hash it may have echoed. */
function scrub(message: string, secrets: readonly (string | undefined)[]): string {
  return redact(message, secrets)
    .replace(/SCRAM-SHA-256\$[^\s'"]+/g, '***')
    .replace(/md5[0-9a-f]{32}/g, '***');
}

/** The globals manifest of the backup being restored; undefined when the backup has none. */
export async function readGlobalsManifest(ctx: RestoreContext): Promise<GlobalsManifest | undefined> {
  const key = keysFor(ctx.deps.store.prefix, ctx.manifest.id).globalsManifest;
  if (!(await ctx.deps.store.head(key).catch((error: unknown) => fetchFailed(ctx, error)))) return undefined;
  try {
    return parseGlobalsManifest(JSON.parse((await ctx.deps.store.getBytes(key)).toString('utf8')));
  } catch (error) {
    if (error instanceof SyntaxError || (error as Error).name === 'ZodError') {
      throw new CorruptBackupError(`the globals manifest ${key} of ${ctx.manifest.id} is unreadable`, {
        cause: error,
      });
    }
    fetchFailed(ctx, error);
  }
}

/**
 * The globals step (before the database is created): the backup's roles, memberships, role
 * settings and tablespaces applied to the target server by one rule per statement
 * (decideGlobalsStatement): what the server lacks is created, what it has is left as it is. A
 * statement that fails is reported and the rest go on; the ownership step then sees which roles
 * exist. Statements are never logged or reported by their text: they hold password hashes.
 */
export async function applyGlobals(
  ctx: RestoreContext,
  required: boolean,
): Promise<RestoreGlobals | undefined> {
  const { deps, manifest, secrets } = ctx;
  const globals = await readGlobalsManifest(ctx);
  if (!globals) {
    if (!required) return undefined;
    throw new InvalidRestoreRequestError(
      `withGlobals: backup ${manifest.id} has no cluster globals (taken before pgbp captured them); restore it without --with-globals, creating its roles first`,
    );
  }
  let script: Buffer;
  try {
    script = await deps.store.getBytes(globals.key);
  } catch (error) {
    fetchFailed(ctx, error);
  }
  const sha256 = createHash('sha256').update(script).digest('hex');
  if (script.length !== globals.sizeBytes || sha256 !== globals.sha256) {
    throw new CorruptBackupError(
      `the cluster globals of ${manifest.id} (${globals.key}) do not match their manifest: ${script.length} bytes, sha256 ${sha256}`,
    );
  }
  const statements = parseGlobals(script.toString('utf8'));
  const client = await pgClient(deps.connection, ctx.maintenance);
  try {
    await client.connect();
  } catch (error) {
    throw new RestoreFailedError(
      `cannot connect to ${describeConnection({ ...deps.connection, database: ctx.maintenance })}: ${redact((error as Error).message, secrets)}`,
      { cause: error },
    );
  }
  const outcome = {
    rolePasswords: globals.rolePasswords,
    rolesCreated: [] as string[],
    rolesLeftAlone: [] as string[],
    membershipsGranted: [] as string[],
    tablespacesCreated: [] as string[],
    notApplied: [] as string[],
    failed: [] as string[],
  };
  try {
    const roles = await client.query<{ rolname: string }>('select rolname from pg_roles');
    const spaces = await client.query<{ spcname: string }>('select spcname from pg_tablespace');
    const state = {
      existingRoles: new Set(roles.rows.map((r) => r.rolname)),
      existingTablespaces: new Set(spaces.rows.map((r) => r.spcname)),
      createdRoles: new Set<string>(),
      createdTablespaces: new Set<string>(),
    };
    for (const statement of statements) {
      const decision = decideGlobalsStatement(statement, state);
      if (!decision.apply) {
        if (statement.kind === 'create-role') outcome.rolesLeftAlone.push(statement.role);
        else if (
          statement.kind === 'membership' ||
          statement.kind === 'other' ||
          statement.kind === 'create-tablespace'
        )
          outcome.notApplied.push(decision.reason);
        continue;
      }
      try {
        await client.query(decision.sql);
      } catch (error) {
        outcome.failed.push(`${describeStatement(statement)}: ${scrub((error as Error).message, secrets)}`);
        continue;
      }
      if (statement.kind === 'create-role') {
        state.createdRoles.add(statement.role);
        outcome.rolesCreated.push(statement.role);
      } else if (statement.kind === 'create-tablespace') {
        state.createdTablespaces.add(statement.tablespace);
        outcome.tablespacesCreated.push(statement.tablespace);
      } else if (statement.kind === 'membership') {
        outcome.membershipsGranted.push(`${statement.member} in ${statement.roles.join(', ')}`);
      }
    }
  } finally {
    await client.end().catch(() => {});
  }
  if (outcome.rolePasswords === 'omitted' && outcome.rolesCreated.length > 0) {
    ctx.warnings.push(
      `roles created without passwords (the backup's user could not read them): ${outcome.rolesCreated.join(', ')}; set them (ALTER ROLE … PASSWORD) before the application connects`,
    );
  }
  for (const f of outcome.failed) ctx.warnings.push(`globals: ${f}`);
  ctx.log.info('globals applied', {
    rolesCreated: outcome.rolesCreated.length,
    rolesLeftAlone: outcome.rolesLeftAlone.length,
    failed: outcome.failed.length,
  });
  return { key: globals.key, ...outcome };
}
