import { createHash, type Hash } from 'node:crypto';
import { storeGlobals } from '../backup/globals.js';
import { listStoredDatabases, type StoredBackup, scanDatabase } from '../catalog/backups.js';
import { mustThaw } from '../catalog/thaw-state.js';
import { keysFor } from '../domain/backup-layout.js';
import { CorruptBackupError } from '../domain/errors.js';
import { parseGlobalsManifest } from '../domain/globals.js';
import { type Manifest, parseManifest } from '../domain/manifest.js';
import { planRetention, type RetentionRules } from '../domain/retention.js';
import type { StoreRole } from '../domain/store-roles.js';
import type { Logger } from '../platform/logger.js';
import { type ByteSource, sourceOf } from '../storage/byte-source.js';
import { encryptionOf, readAgainst } from '../storage/store.js';
import type { RoleStore } from '../storage/store-roles.js';
import { readingStore } from './store-unreadable.js';

/** What became of one backup that one store lacked. */
export interface SyncedBackup {
  readonly database: string;
  readonly backupId: string;
  readonly from: StoreRole;
  readonly to: StoreRole;
  /** copied: verified and stored with its manifest; failed: nothing stored; skipped: left for a reason. */
  readonly status: 'copied' | 'failed' | 'skipped';
  readonly reason?: string;
  readonly bytes?: number;
}

export interface SyncRequest {
  /** The two stores; with fewer there is nothing to sync. */
  readonly stores: readonly RoleStore[];
  /** One database, or every database either store holds. */
  readonly database?: string;
  /** The retention of a database in a store: a store is sent only backups its retention keeps. */
  readonly rules: (role: StoreRole, database: string) => RetentionRules;
  readonly now: Date;
  readonly logger: Logger;
}

/**
 * Copies to each store the complete backups it lacks and the other holds (a degraded run's
 * backup, once the failed store is back), verifying every byte against the manifest's digest
 * before the copy completes: a copy exists whole and verified, with its own manifest written
 * last, or not at all. A store is sent only what its own retention would keep (the NAS gets
 * no year-old monthly backup from S3), and never an archived copy, which must be thawed first.
 */
export async function syncStores(request: SyncRequest): Promise<SyncedBackup[]> {
  const [a, b] = request.stores;
  if (!a || !b) return [];
  const databases = request.database
    ? [request.database]
    : [...new Set([...(await listStoredDatabases(a.store)), ...(await listStoredDatabases(b.store))])].sort();
  const results: SyncedBackup[] = [];
  for (const database of databases) {
    const scan = (at: RoleStore) =>
      readingStore(at, `the backups of ${database}`, () => scanDatabase(at.store, database));
    const [scanA, scanB] = await Promise.all([scan(a), scan(b)]);
    for (const [from, to, source, target] of [
      [a, b, scanA.backups, scanB.backups],
      [b, a, scanB.backups, scanA.backups],
    ] as const) {
      const held = new Set(target.map((t) => t.manifest.id));
      const missing = source.filter((s) => !held.has(s.manifest.id));
      if (missing.length === 0) continue;
      const wanted = keptByTarget(missing, target, request.rules(to.role, database), request.now);
      for (const backup of missing) {
        const base = { database, backupId: backup.manifest.id, from: from.role, to: to.role };
        if (!wanted.has(backup.manifest.id)) {
          results.push({
            ...base,
            status: 'skipped',
            reason: `the ${to.role} store's retention would not keep it`,
          });
          continue;
        }
        try {
          const bytes = await copyBackup(backup, from, to);
          request.logger.info('backup copied', { ...base, bytes });
          results.push({ ...base, status: 'copied', bytes });
        } catch (error) {
          const reason = (error as Error).message;
          const archived = reason.startsWith('archived:');
          request.logger.warn('backup not copied', { ...base, reason });
          results.push({ ...base, status: archived ? 'skipped' : 'failed', reason });
        }
      }
    }
  }
  return results;
}

/** The ids among `missing` that the target's retention would keep beside what it holds. */
function keptByTarget(
  missing: readonly StoredBackup[],
  held: readonly StoredBackup[],
  rules: RetentionRules,
  now: Date,
): Set<string> {
  const plan = planRetention({
    now,
    rules,
    // The staleness guard is retention's own safety; here only the counts matter.
    staleAfter: Number.POSITIVE_INFINITY,
    backups: [...missing, ...held].map((s) => ({
      id: s.manifest.id,
      createdAt: new Date(s.manifest.createdAt),
      tier: s.manifest.tier,
    })),
  });
  return new Set(plan.keep.map((k) => k.backup.id));
}

/**
 * Streams one backup from a store to the other, hashing as it goes; the copy completes only
 * when its size and SHA-256 are the manifest's. Then the manifest, with the target's key,
 * storage class and encryption, is written last.
 */
async function copyBackup(backup: StoredBackup, from: RoleStore, to: RoleStore): Promise<number> {
  const { manifest } = backup;
  const details = await from.store.head(manifest.key);
  if (!details) throw new Error(`${manifest.key} is gone from ${from.store.url}`);
  if (mustThaw(details)) {
    throw new Error(
      `archived: ${manifest.key} is ${details.storageClass} in ${from.store.url}; thaw it first`,
    );
  }
  const keys = keysFor(to.store.prefix, manifest.id);
  // An encrypted backup is checked by the store it is read from (the reader sees plaintext),
  // and may be stored as other bytes (each store's own key and context): the copy's manifest
  // has the digest of what the target holds.
  const read = readAgainst(manifest);
  const readBytes = sourceOf(await from.store.getStream(manifest.key, read.options));
  const passed = createHash('sha256');
  const body = hashed(read.check ? verified(readBytes, manifest, from.store.url) : readBytes, passed);
  const put = await to.store.putStream(keys.dump, body, {
    tags: { tier: manifest.tier },
    storageClass: to.storageClass,
  });
  const { bytes } = put;
  const stored = await to.store.head(keys.dump);
  if (stored?.size !== bytes) {
    await to.store.deleteMany([keys.dump]);
    throw new Error(
      `the copy ${keys.dump} in ${to.store.url} is ${stored?.size ?? 'missing'}, expected ${bytes} bytes`,
    );
  }
  const copy: Manifest = parseManifest({
    ...manifest,
    key: keys.dump,
    sizeBytes: bytes,
    sha256: put.sha256 ?? passed.digest('hex'),
    storageClass: stored.storageClass,
    encryption: await encryptionOf(to.store, keys.dump, stored.encryption),
  });
  try {
    // The cluster globals taken with the dump go along, verified, before the manifest.
    if (backup.globalsManifestObject) await copyGlobals(backup.globalsManifestObject.key, from, to, keys);
    await to.store.putBytes(keys.manifest, `${JSON.stringify(copy, null, 2)}\n`, {
      contentType: 'application/json',
    });
  } catch (error) {
    await to.store.deleteMany([keys.dump, keys.globals, keys.globalsManifest]).catch(() => {});
    throw error;
  }
  return bytes;
}

/** Copies a backup's cluster globals and their manifest, the bytes checked against it first. */
async function copyGlobals(
  manifestKey: string,
  from: RoleStore,
  to: RoleStore,
  keys: ReturnType<typeof keysFor>,
): Promise<void> {
  const {
    key: _key,
    storageClass: _class,
    encryption: _enc,
    ...fields
  } = parseGlobalsManifest(JSON.parse((await from.store.getBytes(manifestKey)).toString('utf8')));
  const bytes = await from.store.getBytes(_key);
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length !== fields.sizeBytes || digest !== fields.sha256) {
    throw new CorruptBackupError(`${_key} in ${from.store.url} does not match its manifest: not copied`);
  }
  await storeGlobals(to.store, keys, { bytes, fields });
}

/** The source's bytes, each hashed into `hash` as it passes. */
export function hashed(source: ByteSource, hash: Hash): ByteSource {
  return {
    async fill(into) {
      const filled = await source.fill(into);
      hash.update(into.subarray(0, filled));
      return filled;
    },
    destroy: (error) => source.destroy(error),
  };
}

/**
 * The source's bytes, hashed as they pass; the end is only reached once the size and digest
 * are the manifest's, else the read fails (CorruptBackupError) and the target stores nothing.
 */
export function verified(
  source: ByteSource,
  manifest: Pick<Manifest, 'key' | 'sizeBytes' | 'sha256'>,
  url: string,
): ByteSource {
  const hash = createHash('sha256');
  let total = 0;
  let checked = false;
  return {
    async fill(into) {
      const filled = await source.fill(into);
      hash.update(into.subarray(0, filled));
      total += filled;
      if (filled < into.length && !checked) {
        checked = true;
        const digest = hash.digest('hex');
        if (total !== manifest.sizeBytes || digest !== manifest.sha256) {
          const error = new CorruptBackupError(
            `${manifest.key} in ${url} does not match its manifest (${total} bytes, sha256 ${digest}; expected ${manifest.sizeBytes} bytes, ${manifest.sha256}): not copied`,
          );
          source.destroy(error);
          throw error;
        }
      }
      return filled;
    },
    destroy: (error) => source.destroy(error),
  };
}
