/**
 * The two stores the recovery guide keeps every backup in: the primary (the on-premises NAS,
 * for quick recovery) and the secondary (S3, for geographic redundancy). A stage with one
 * store has only the primary.
 */
export const STORE_ROLES = ['primary', 'secondary'] as const;
export type StoreRole = (typeof STORE_ROLES)[number];

/** The other store of the two. */
export function otherRole(role: StoreRole): StoreRole {
  return role === 'primary' ? 'secondary' : 'primary';
}

/** What became of one store's copy of a backup. */
export type CopyOutcome =
  | { readonly role: StoreRole; readonly url: string; readonly status: 'stored'; readonly key: string }
  | {
      readonly role: StoreRole;
      readonly url: string;
      readonly status: 'failed';
      /** The error's name and message (never a secret: store errors carry no credentials). */
      readonly error: { readonly name: string; readonly message: string };
    };

/** A run that stored its backup in some of its stores but not all: the backup exists, once. */
export function isDegraded(copies: readonly CopyOutcome[]): boolean {
  return copies.some((c) => c.status === 'failed') && copies.some((c) => c.status === 'stored');
}

/** One line per failed copy: which store, and why. */
export function describeFailedCopies(copies: readonly CopyOutcome[]): string[] {
  return copies.flatMap((c) =>
    c.status === 'failed' ? [`${c.role} store ${c.url}: ${c.error.message}`] : [],
  );
}

/** A store whose copy of a backup a restore did not use, and why (missing, damaged, archived). */
export interface PassedOver {
  readonly role: StoreRole;
  readonly url: string;
  readonly reason: string;
}

/** Which store's copy a restore read, and the copies it passed over on the way. */
export interface CopyUsed {
  readonly role: StoreRole;
  readonly url: string;
  readonly passedOver: readonly PassedOver[];
}

/** The copy a restore read, as a person reads it. */
export function describeCopyUsed(copy: CopyUsed): string {
  const why = copy.passedOver.map((p) => `the ${p.role} copy was ${p.reason}`).join('; ');
  return `read the ${copy.role} store's copy (${copy.url})${why ? `: ${why}` : ''}`;
}

/** How far one database's newest backup in the secondary store trails the primary's (or leads it). */
export interface StoreLag {
  readonly database: string;
  /** The store whose newest backup is older, or null when both have the same newest (or none). */
  readonly behind: StoreRole | null;
  /** Hours between the two newest backups; null when a store has none. */
  readonly hours: number | null;
  readonly primaryNewest: string | null;
  readonly secondaryNewest: string | null;
}

/** The lag of each database between the two stores, from each store's newest backup. */
export function storeLag(
  primary: readonly {
    readonly database: string;
    readonly newest: { id: string; createdAt: string } | null;
  }[],
  secondary: readonly {
    readonly database: string;
    readonly newest: { id: string; createdAt: string } | null;
  }[],
): StoreLag[] {
  const names = [...new Set([...primary, ...secondary].map((d) => d.database))].sort();
  return names.map((database) => {
    const p = primary.find((d) => d.database === database)?.newest ?? null;
    const s = secondary.find((d) => d.database === database)?.newest ?? null;
    const base = { database, primaryNewest: p?.id ?? null, secondaryNewest: s?.id ?? null };
    if (!p && !s) return { ...base, behind: null, hours: null };
    if (!p || !s) return { ...base, behind: p ? 'secondary' : 'primary', hours: null };
    const ms = Date.parse(p.createdAt) - Date.parse(s.createdAt);
    return {
      ...base,
      behind: ms === 0 ? null : ms > 0 ? 'secondary' : 'primary',
      hours: Math.round((Math.abs(ms) / 3_600_000) * 10) / 10,
    };
  });
}
