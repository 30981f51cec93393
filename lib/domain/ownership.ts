import { isKeyword, nameOf, type SqlToken, splitStatements, tokenize } from './sql-text.js';

/**
 * Owners and privileges of a restore: which roles an archive's objects belong to and grant to,
 * and whether the target server has them. They are kept whenever it does; when a role is missing,
 * pg_restore would stop at the first ALTER … OWNER TO or GRANT naming it, so the restore leaves
 * owners (or privileges) out and says exactly which.
 */

/** What the ownership step needs of an archive's TOC entry. */
export interface ArchiveObject {
  readonly desc: string;
  readonly tag: string;
  readonly namespace: string;
  readonly owner: string;
  readonly defn?: string;
  readonly tablespace?: string;
}

/**
 * The kinds of object pg_restore sets an owner on (ALTER … OWNER TO); others (indexes,
 * constraints, data, comments) carry their table's owner in the TOC without it being set.
 */
const OWNED: ReadonlySet<string> = new Set([
  'AGGREGATE',
  'COLLATION',
  'CONVERSION',
  'DOMAIN',
  'EVENT TRIGGER',
  'FOREIGN DATA WRAPPER',
  'FOREIGN TABLE',
  'FUNCTION',
  'LARGE OBJECT',
  'MATERIALIZED VIEW',
  'OPERATOR',
  'OPERATOR CLASS',
  'OPERATOR FAMILY',
  'PROCEDURE',
  'PUBLICATION',
  'SCHEMA',
  'SEQUENCE',
  'SERVER',
  'STATISTICS',
  'SUBSCRIPTION',
  'TABLE',
  'TEXT SEARCH CONFIGURATION',
  'TEXT SEARCH DICTIONARY',
  'TYPE',
  'VIEW',
]);

const PRIVILEGES: ReadonlySet<string> = new Set(['ACL', 'DEFAULT ACL']);

const LIST_ENDS = ['with', 'granted', 'cascade', 'restrict', 'in', 'grant', 'revoke'];

/** The role names of a list (`a, "B", GROUP c, PUBLIC`) from `from` up to a keyword that ends it. */
function roleList(tokens: readonly SqlToken[], from: number): string[] {
  const roles: string[] = [];
  for (let i = from; i < tokens.length; i += 1) {
    const t = tokens[i];
    if (LIST_ENDS.some((w) => isKeyword(t, w))) break;
    if (t?.kind === 'punct' || isKeyword(t, 'group') || isKeyword(t, 'public')) continue;
    const name = nameOf(t);
    if (name !== undefined) roles.push(name);
  }
  return roles;
}

/** The roles that the GRANT and REVOKE statements of an ACL entry name: grantees, grantors, owners acted as. */
export function rolesInPrivileges(defn: string): string[] {
  const roles = new Set<string>();
  for (const statement of splitStatements(defn)) {
    const t = tokenize(statement);
    if (isKeyword(t[0], 'set') && isKeyword(t[1], 'session') && isKeyword(t[2], 'authorization')) {
      const who = t[3]?.kind === 'string' ? t[3].text : nameOf(t[3]);
      if (who !== undefined && who !== 'default') roles.add(who);
      continue;
    }
    const forRole = t.findIndex(
      (x, i) => isKeyword(x, 'for') && (isKeyword(t[i + 1], 'role') || isKeyword(t[i + 1], 'user')),
    );
    if (forRole >= 0) for (const r of roleList(t, forRole + 2)) roles.add(r);
    const verb = t.findIndex((x) => isKeyword(x, 'grant') || isKeyword(x, 'revoke'));
    if (verb < 0) continue;
    const word = isKeyword(t[verb], 'grant') ? 'to' : 'from';
    const at = t.findIndex((x, i) => i > verb && isKeyword(x, word));
    if (at >= 0) for (const r of roleList(t, at + 1)) roles.add(r);
    const by = t.findIndex((x, i) => isKeyword(x, 'granted') && isKeyword(t[i + 1], 'by'));
    const grantor = by >= 0 ? nameOf(t[by + 2]) : undefined;
    if (grantor !== undefined) roles.add(grantor);
  }
  return [...roles];
}

/** An archive object as people name it: `TABLE shop.items`. */
export function describeObject(o: Pick<ArchiveObject, 'desc' | 'tag' | 'namespace'>): string {
  if (PRIVILEGES.has(o.desc))
    return `${o.desc === 'ACL' ? 'privileges on' : 'default privileges'} ${o.tag}${o.namespace ? ` in schema ${o.namespace}` : ''}`;
  return `${o.desc} ${o.namespace ? `${o.namespace}.` : ''}${o.tag}`;
}

export type Kept = 'kept' | 'dropped' | 'not restored';

export interface OwnershipPlan {
  /** The pg_restore flags to use. */
  readonly noOwner: boolean;
  readonly noPrivileges: boolean;
  readonly noTablespaces: boolean;
  /** `kept`; `dropped` because a role is missing in the target; `not restored` because asked so. */
  readonly owners: Kept;
  readonly privileges: Kept;
  /** Roles the archive names that the target server lacks. */
  readonly missingRoles: readonly string[];
  /** When owners were dropped: every owner left out, with the objects restored without it. */
  readonly droppedOwners: readonly {
    readonly role: string;
    readonly missing: boolean;
    readonly objects: readonly string[];
  }[];
  /** When privileges were dropped: every GRANT/REVOKE entry left out, with the roles it names. */
  readonly droppedPrivileges: readonly { readonly object: string; readonly roles: readonly string[] }[];
  /**
   * Tablespaces the archive's objects are in that the target lacks: then every object is created
   * in the database's default tablespace instead (pg_restore --no-tablespaces), and these say
   * which objects were to go where.
   */
  readonly missingTablespaces: readonly string[];
  readonly droppedTablespaces: readonly {
    readonly tablespace: string;
    readonly objects: readonly string[];
  }[];
}

/**
 * Whether a restore can keep owners and privileges on this target: it keeps them unless asked
 * not to, or unless a role they name is missing there. pg_restore sets owners all or none, and
 * the privileges the same way, so a missing role drops that part whole; the plan names every
 * owner and every privilege entry so dropped.
 */
export function planOwnership(
  objects: readonly ArchiveObject[],
  targetRoles: ReadonlySet<string>,
  asked: { readonly noOwner: boolean; readonly noPrivileges: boolean },
  schemas: readonly string[] = [],
  targetTablespaces?: ReadonlySet<string>,
): OwnershipPlan {
  const inScope = schemas.length === 0 ? objects : objects.filter((o) => schemas.includes(o.namespace));
  const owners = new Map<string, string[]>();
  for (const o of inScope) {
    if (!o.owner || !OWNED.has(o.desc)) continue;
    owners.set(o.owner, [...(owners.get(o.owner) ?? []), describeObject(o)]);
  }
  const grants = inScope
    .filter((o) => PRIVILEGES.has(o.desc) && o.defn)
    .map((o) => ({ object: describeObject(o), roles: rolesInPrivileges(o.defn as string) }));
  const missing = new Set<string>();
  for (const role of owners.keys()) if (!targetRoles.has(role)) missing.add(role);
  const ownersMissing = missing.size > 0;
  for (const g of grants) for (const r of g.roles) if (!targetRoles.has(r)) missing.add(r);
  const privilegesMissing = grants.some((g) => g.roles.some((r) => !targetRoles.has(r)));
  const spaces = new Map<string, string[]>();
  for (const o of inScope) {
    if (o.tablespace && targetTablespaces)
      spaces.set(o.tablespace, [...(spaces.get(o.tablespace) ?? []), describeObject(o)]);
  }
  const missingSpaces = [...spaces.keys()].filter((t) => !targetTablespaces?.has(t)).sort();
  const ownersState: Kept = asked.noOwner ? 'not restored' : ownersMissing ? 'dropped' : 'kept';
  const privilegesState: Kept = asked.noPrivileges ? 'not restored' : privilegesMissing ? 'dropped' : 'kept';
  return {
    noOwner: ownersState !== 'kept',
    noPrivileges: privilegesState !== 'kept',
    owners: ownersState,
    privileges: privilegesState,
    missingRoles: [...missing].sort(),
    droppedOwners:
      ownersState === 'dropped'
        ? [...owners].map(([role, list]) => ({ role, missing: !targetRoles.has(role), objects: list }))
        : [],
    droppedPrivileges: privilegesState === 'dropped' ? grants : [],
    noTablespaces: missingSpaces.length > 0,
    missingTablespaces: missingSpaces,
    droppedTablespaces:
      missingSpaces.length > 0
        ? [...spaces].map(([tablespace, list]) => ({ tablespace, objects: list }))
        : [],
  };
}

/** The report's warnings for what a plan dropped: which roles are missing, and what went without them. */
export function ownershipWarnings(plan: OwnershipPlan, restoredAs: string): string[] {
  const warnings: string[] = [];
  const missing = plan.missingRoles.join(', ');
  const more = (list: readonly string[]) =>
    list.length > 5 ? `${list.slice(0, 5).join(', ')} and ${list.length - 5} more` : list.join(', ');
  if (plan.owners === 'dropped') {
    const objects = plan.droppedOwners.flatMap((o) => o.objects);
    warnings.push(
      `owners dropped: roles missing in the target server (${missing}); ${objects.length} object(s) restored as ${restoredAs} instead of ${plan.droppedOwners
        .map((o) => `${o.role} (${more(o.objects)})`)
        .join('; ')}. Restore with --with-globals, or create the roles first`,
    );
  }
  if (plan.privileges === 'dropped') {
    warnings.push(
      `privileges dropped: roles missing in the target server (${missing}); left out: ${more(
        plan.droppedPrivileges.map((p) => p.object),
      )}. Restore with --with-globals, or create the roles first`,
    );
  }
  if (plan.noTablespaces) {
    warnings.push(
      `tablespaces dropped: missing in the target server (${plan.missingTablespaces.join(', ')}); every object restored in the default tablespace, ${plan.droppedTablespaces
        .map((t) => `${t.tablespace} (${more(t.objects)})`)
        .join('; ')}. Create the tablespaces first (their directories must exist) to keep them`,
    );
  }
  return warnings;
}
