import type * as z from 'zod';

/** `databases[0].size.minBytes`, as the key path of a YAML file or an event reads; `top` for the whole. */
export function issuePath(path: readonly PropertyKey[], top: string): string {
  return (
    path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') ||
    top
  );
}

/**
 * One line per problem a schema found, `path: message`, never echoing the values (an event or a
 * config may hold secrets). `top` names the whole input when the problem is with it.
 */
export function describeIssues(error: z.ZodError, top: string): string[] {
  return error.issues.map((i) => `${issuePath(i.path, top)}: ${i.message}`);
}
