import * as z from 'zod';
import { isKeyableDatabaseName, parseBackupId } from './backup-layout.js';
import { encryptionSchema } from './manifest.js';
import { isKeyword, nameOf, quoteName, type SqlToken, splitStatements, tokenize } from './sql-text.js';

/**
 * The cluster globals of a backup: `pg_dumpall --globals-only` (roles, their memberships and
 * settings, tablespaces), stored beside the dump as `<backupId>.globals.sql` with its manifest
 * `<backupId>.globals.json`, and the rule by which a restore applies them: create what is missing,
 * never change what exists.
 */

export const GLOBALS_MANIFEST_VERSION = 1;

const isoDate = z.iso.datetime({ offset: false });

export const globalsManifestSchema = z
  .object({
    manifestVersion: z.literal(GLOBALS_MANIFEST_VERSION),
    kind: z.literal('globals'),
    /** The backup these globals were captured with. */
    backupId: z.string().refine((v) => parseBackupId(v) !== undefined, 'a backup id'),
    /** The database pg_dumpall connected through. */
    database: z.string().refine(isKeyableDatabaseName, 'a database name usable in a key'),
    createdAt: isoDate,
    key: z.string().min(1),
    sizeBytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    serverVersion: z.string().min(1),
    pgDumpallVersion: z.string().min(1),
    /**
     * Whether role passwords are in the object: `included` when the connecting user could read
     * pg_authid, else `omitted` (`--no-role-passwords`, as on RDS): restored roles then have none.
     */
    rolePasswords: z.enum(['included', 'omitted']),
    /** The roles and tablespaces the object creates, by name. */
    roles: z.array(z.string()),
    tablespaces: z.array(z.string()),
    storageClass: z.string().min(1),
    /** With client-side encryption, `sizeBytes` and `sha256` are the script's, as read back decrypted. */
    encryption: encryptionSchema,
  })
  .strict();

export type GlobalsManifest = z.infer<typeof globalsManifestSchema>;

export function parseGlobalsManifest(value: unknown): GlobalsManifest {
  return globalsManifestSchema.parse(value);
}

/** What one statement of the globals does, and to what. */
export type GlobalsStatement =
  | { readonly kind: 'session'; readonly sql: string }
  | { readonly kind: 'create-role'; readonly sql: string; readonly role: string }
  | { readonly kind: 'role-attributes'; readonly sql: string; readonly role: string }
  | { readonly kind: 'role-setting'; readonly sql: string; readonly role: string }
  | { readonly kind: 'role-comment'; readonly sql: string; readonly role: string }
  | {
      readonly kind: 'membership';
      readonly sql: string;
      readonly roles: readonly string[];
      readonly member: string;
      readonly grantor?: string;
    }
  | { readonly kind: 'create-tablespace'; readonly sql: string; readonly tablespace: string }
  | { readonly kind: 'tablespace-detail'; readonly sql: string; readonly tablespace: string }
  | { readonly kind: 'other'; readonly sql: string };

/** The name right after the keywords `words` at the start of a statement, if it starts so. */
function nameAfter(tokens: readonly SqlToken[], words: readonly string[]): string | undefined {
  if (!words.every((w, i) => isKeyword(tokens[i], w))) return undefined;
  return nameOf(tokens[words.length]);
}

function classify(sql: string): GlobalsStatement {
  const t = tokenize(sql);
  if (isKeyword(t[0], 'set') || isKeyword(t[0], 'reset')) return { kind: 'session', sql };
  const created = nameAfter(t, ['create', 'role']);
  if (created !== undefined && t.length === 3) return { kind: 'create-role', sql, role: created };
  const altered = nameAfter(t, ['alter', 'role']);
  if (altered !== undefined) {
    if (isKeyword(t[3], 'with')) return { kind: 'role-attributes', sql, role: altered };
    if (isKeyword(t[3], 'set') || isKeyword(t[3], 'in') || isKeyword(t[3], 'reset'))
      return { kind: 'role-setting', sql, role: altered };
  }
  const commented = nameAfter(t, ['comment', 'on', 'role']);
  if (commented !== undefined) return { kind: 'role-comment', sql, role: commented };
  if (isKeyword(t[0], 'security') && isKeyword(t[1], 'label')) {
    const on = t.findIndex((x, i) => i > 1 && isKeyword(x, 'on'));
    if (on > 0 && isKeyword(t[on + 1], 'role')) {
      const role = nameOf(t[on + 2]);
      if (role !== undefined) return { kind: 'role-comment', sql, role };
    }
  }
  const tablespace = nameAfter(t, ['create', 'tablespace']);
  if (tablespace !== undefined) return { kind: 'create-tablespace', sql, tablespace };
  const alteredSpace = nameAfter(t, ['alter', 'tablespace']) ?? nameAfter(t, ['comment', 'on', 'tablespace']);
  if (alteredSpace !== undefined) return { kind: 'tablespace-detail', sql, tablespace: alteredSpace };
  if (isKeyword(t[0], 'grant') || isKeyword(t[0], 'revoke')) {
    const on = t.findIndex((x) => isKeyword(x, 'on'));
    if (on > 0 && isKeyword(t[on + 1], 'tablespace')) {
      const space = nameOf(t[on + 2]);
      if (space !== undefined) return { kind: 'tablespace-detail', sql, tablespace: space };
    }
    if (isKeyword(t[0], 'grant') && on < 0) {
      // GRANT role [, role] TO member [WITH …] [GRANTED BY grantor]
      const to = t.findIndex((x) => isKeyword(x, 'to'));
      const roles = t
        .slice(1, to)
        .filter((x) => x.kind !== 'punct')
        .map(nameOf);
      const member = nameOf(t[to + 1]);
      const by = t.findIndex((x, i) => isKeyword(x, 'granted') && isKeyword(t[i + 1], 'by'));
      const grantor = by > 0 ? nameOf(t[by + 2]) : undefined;
      if (to > 1 && member !== undefined && roles.every((r) => r !== undefined)) {
        return {
          kind: 'membership',
          sql,
          roles: roles as string[],
          member,
          ...(grantor !== undefined ? { grantor } : {}),
        };
      }
    }
  }
  return { kind: 'other', sql };
}

/** The statements of a pg_dumpall --globals-only script, each classified. */
export function parseGlobals(script: string): GlobalsStatement[] {
  return splitStatements(script).map(classify);
}

/** The roles and tablespaces a globals script creates, in its order. */
export function globalsInventory(statements: readonly GlobalsStatement[]): {
  readonly roles: string[];
  readonly tablespaces: string[];
} {
  const roles: string[] = [];
  const tablespaces: string[] = [];
  for (const s of statements) {
    if (s.kind === 'create-role') roles.push(s.role);
    if (s.kind === 'create-tablespace') tablespaces.push(s.tablespace);
  }
  return { roles, tablespaces };
}

/** What a restore found in the target server, and what it created there so far. */
export interface GlobalsState {
  readonly existingRoles: ReadonlySet<string>;
  readonly existingTablespaces: ReadonlySet<string>;
  readonly createdRoles: ReadonlySet<string>;
  readonly createdTablespaces: ReadonlySet<string>;
}

export type GlobalsDecision =
  | { readonly apply: true; readonly sql: string }
  | { readonly apply: false; readonly reason: string };

/**
 * The one rule for each statement: a role or tablespace is created only when the target lacks
 * it, and everything about it (attributes, password, settings, comments, memberships it gains)
 * is applied only when this restore created it. An existing role is never altered, granted to,
 * or dropped. A grantor the target lacks is left out (the membership is then granted by the
 * restoring user).
 */
export function decideGlobalsStatement(s: GlobalsStatement, state: GlobalsState): GlobalsDecision {
  switch (s.kind) {
    case 'session':
      return { apply: true, sql: s.sql };
    case 'create-role':
      return state.existingRoles.has(s.role)
        ? { apply: false, reason: `role ${s.role} exists in the target: left as it is` }
        : { apply: true, sql: s.sql };
    case 'role-attributes':
    case 'role-setting':
    case 'role-comment':
      return state.createdRoles.has(s.role)
        ? { apply: true, sql: s.sql }
        : { apply: false, reason: `role ${s.role} was not created by this restore` };
    case 'membership': {
      if (!state.createdRoles.has(s.member))
        return {
          apply: false,
          reason: `membership of ${s.member} in ${s.roles.join(', ')}: ${s.member} was not created by this restore`,
        };
      const missing = s.roles.filter((r) => !state.existingRoles.has(r) && !state.createdRoles.has(r));
      if (missing.length > 0)
        return {
          apply: false,
          reason: `membership of ${s.member} in ${s.roles.join(', ')}: ${missing.join(', ')} not in the target`,
        };
      const grantorThere =
        s.grantor === undefined || state.existingRoles.has(s.grantor) || state.createdRoles.has(s.grantor);
      if (grantorThere) return { apply: true, sql: s.sql };
      return { apply: true, sql: withoutGrantedBy(s.sql) };
    }
    case 'create-tablespace':
      return state.existingTablespaces.has(s.tablespace)
        ? { apply: false, reason: `tablespace ${s.tablespace} exists in the target: left as it is` }
        : { apply: true, sql: s.sql };
    case 'tablespace-detail':
      return state.createdTablespaces.has(s.tablespace)
        ? { apply: true, sql: s.sql }
        : { apply: false, reason: `tablespace ${s.tablespace} was not created by this restore` };
    case 'other':
      return {
        apply: false,
        reason: `not a statement a restore of globals applies: ${describeStatement(s)}`,
      };
  }
}

function withoutGrantedBy(sql: string): string {
  // Rebuilt from its tokens (names quoted again), up to GRANTED BY, which pg_dumpall writes last.
  const t = tokenize(sql);
  const by = t.findIndex((x, i) => isKeyword(x, 'granted') && isKeyword(t[i + 1], 'by'));
  return t
    .slice(0, by)
    .map((x) => (x.kind === 'ident' ? quoteName(x.text) : x.kind === 'string' ? `'${x.text}'` : x.text))
    .join(' ')
    .replace(/ ,/g, ',');
}

/**
 * A statement as people may read it: its kind and names only. Never its text, which may hold a
 * password (`ALTER ROLE … PASSWORD '…'`).
 */
export function describeStatement(s: GlobalsStatement): string {
  switch (s.kind) {
    case 'create-role':
      return `CREATE ROLE ${s.role}`;
    case 'role-attributes':
      return `ALTER ROLE ${s.role} WITH (attributes)`;
    case 'role-setting':
      return `ALTER ROLE ${s.role} SET (a setting)`;
    case 'role-comment':
      return `COMMENT ON ROLE ${s.role}`;
    case 'membership':
      return `GRANT ${s.roles.join(', ')} TO ${s.member}`;
    case 'create-tablespace':
      return `CREATE TABLESPACE ${s.tablespace}`;
    case 'tablespace-detail':
      return `a detail of tablespace ${s.tablespace}`;
    case 'session':
      return 'a session setting';
    case 'other': {
      const words = tokenize(s.sql)
        .slice(0, 2)
        .filter((x) => x.kind === 'word')
        .map((x) => x.text.toUpperCase());
      return `${words.join(' ') || 'a statement'} …`;
    }
  }
}
