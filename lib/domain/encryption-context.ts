import { parseKey } from './backup-layout.js';
import { PHYSICAL_ROOT, parseWalObjectKey } from './physical-layout.js';

/** What binds an encrypted object to where it belongs; KMS and the key file's keyring check it. */
export type EncryptionContext = Readonly<Record<string, string>>;

/** The prefix of every pair of the context this project writes. */
export const CONTEXT_PREFIX = 'pgbp:';

/**
 * The encryption context of the object at `key`, or undefined for an object of the catalog
 * (manifests, reports, the archive's identity: every `.json` object), which stays readable and
 * holds no row data. Every data object is bound to its stage and its key below the prefix, and
 * by name to its database and backup id, or its cluster and WAL file or base backup; whatever
 * else comes to be stored (a new kind of object) is bound to its stage and key and so is
 * encrypted too.
 */
export function encryptionContextFor(
  stage: string,
  prefix: string,
  key: string,
): EncryptionContext | undefined {
  if (key.endsWith('.json')) return undefined;
  const root = prefix.replace(/^\/+|\/+$/g, '');
  const object = root !== '' && key.startsWith(`${root}/`) ? key.slice(root.length + 1) : key;
  const context: Record<string, string> = { 'pgbp:stage': stage, 'pgbp:object': object };
  const logical = parseKey(prefix, key);
  if (logical) {
    context['pgbp:database'] = logical.database;
    context['pgbp:backup'] = logical.backupId;
    return context;
  }
  const physical = new RegExp(`^${PHYSICAL_ROOT}/([^/]+)/(wal|base)/([^/]+)/`).exec(object);
  if (physical?.[1]) {
    context['pgbp:cluster'] = physical[1];
    const wal = parseWalObjectKey(key);
    if (wal) context['pgbp:wal'] = wal.name;
    else if (physical[2] === 'base' && physical[3]) context['pgbp:base'] = physical[3];
  }
  return context;
}

/** The pairs of `expected` that `found` lacks or differs in, and the pgbp pairs it has beyond them. */
export function contextMismatches(expected: EncryptionContext, found: EncryptionContext): string[] {
  const wrong: string[] = [];
  for (const [name, value] of Object.entries(expected)) {
    if (found[name] !== value)
      wrong.push(
        `${name} is ${found[name] === undefined ? 'missing' : JSON.stringify(found[name])}, expected ${JSON.stringify(value)}`,
      );
  }
  for (const name of Object.keys(found)) {
    if (name.startsWith(CONTEXT_PREFIX) && !(name in expected)) wrong.push(`${name} is not expected here`);
  }
  return wrong;
}
