import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { mustThaw } from '../catalog/thaw-state.js';
import { type BaseManifest, parseBaseManifest } from '../domain/base-backup.js';
import { ObjectExistsError } from '../domain/errors.js';
import { baseBackupKeys } from '../domain/physical-layout.js';
import { nextSegmentName } from '../domain/wal-names.js';
import { sourceOf } from '../storage/byte-source.js';
import { type BackupStore, encryptionOf, readAgainst, requireKeyFor } from '../storage/store.js';
import type { RoleStore } from '../storage/store-roles.js';
import type { SyncedPhysical } from './physical-report.js';
import { hashed, verified } from './sync.js';

/**
 * Copies one complete base backup (its manifest exists in the source) to a store that lacks it:
 * the tar stream checked against the manifest's size and SHA-256 as it passes (the read fails
 * before its end otherwise, and the target keeps nothing), PostgreSQL's backup_manifest checked
 * likewise, then the manifest, with the target's keys, digest and encryption, written last, and
 * only when the target's archive holds the WAL from the backup's start to its stop (`walHeld`):
 * a base backup exists only with the WAL that makes it consistent.
 */
export async function copyBaseBackup(
  entry: Omit<SyncedPhysical, 'status'>,
  manifest: BaseManifest,
  from: RoleStore,
  to: RoleStore,
  walHeld: ReadonlySet<string>,
  now: Date,
): Promise<SyncedPhysical> {
  const where = `base backup ${manifest.id} in the ${from.role} store (${from.store.url})`;
  const lacking = neededWal(manifest).filter((name) => !walHeld.has(name));
  if (lacking.length > 0) {
    return {
      ...entry,
      status: 'failed',
      reason: `the ${to.role} store lacks ${lacking.length} WAL segment(s) it needs (${lacking[0]}${lacking.length > 1 ? ` … ${lacking.at(-1)}` : ''}): not copied`,
    };
  }
  const source = await from.store.head(manifest.key).catch(() => undefined);
  if (!source)
    return { ...entry, status: 'failed', reason: `${manifest.key} is gone from ${from.store.url}` };
  if (mustThaw(source)) {
    return {
      ...entry,
      status: 'skipped',
      reason: `${manifest.key} is ${source.storageClass} in ${from.store.url}; thaw it first`,
    };
  }
  const keys = baseBackupKeys(to.store.prefix, entry.cluster, manifest.id);
  const tarKey = `${keys.folder}/${basename(manifest.key)}`;
  const written: string[] = [];
  try {
    await requireKeyFor(from.store, { ...manifest, id: `base backup ${manifest.id}` });
    const read = readAgainst(manifest);
    const bytesIn = sourceOf(await from.store.getStream(manifest.key, read.options));
    const passed = createHash('sha256');
    const body = hashed(read.check ? verified(bytesIn, manifest, from.store.url) : bytesIn, passed);
    const put = await to.store.putStream(tarKey, body, { storageClass: to.storageClass });
    written.push(tarKey);
    const stored = await to.store.head(tarKey);
    if (stored?.size !== put.bytes) {
      throw new Error(
        `the copy ${tarKey} in ${to.store.url} is ${stored?.size ?? 'missing'}, expected ${put.bytes} bytes`,
      );
    }
    // Version 1 kept PostgreSQL's backup_manifest apart as well; later ones keep it in the tar only.
    const apart =
      'backupManifest' in manifest
        ? { backupManifest: await copyBackupManifest(manifest, from.store, to, keys.backupManifest) }
        : {};
    if ('backupManifest' in apart) written.push(keys.backupManifest);
    const copy = parseBaseManifest({
      ...manifest,
      key: tarKey,
      sizeBytes: put.bytes,
      sha256: put.sha256 ?? passed.digest('hex'),
      ...apart,
      storageClass: stored.storageClass,
      encryption: await encryptionOf(to.store, tarKey, stored.encryption),
      // Confirmed now in this store: the WAL it needs was checked above.
      walConfirmedAt: now.toISOString(),
    });
    await to.store.putBytes(keys.manifest, `${JSON.stringify(copy, null, 2)}\n`, {
      contentType: 'application/json',
    });
    await copyDrillReport(entry.cluster, manifest, from.store, to.store, keys.drillReport);
    return { ...entry, status: 'copied', bytes: put.bytes };
  } catch (error) {
    await to.store.deleteMany(written).catch(() => {});
    if (error instanceof ObjectExistsError && written.length === 0) {
      // The target holds the tar with no manifest: another run copying it now, or what an
      // incomplete one left (debris, which retention removes); neither is replaced.
      return {
        ...entry,
        status: 'skipped',
        reason: `the ${to.role} store already holds ${tarKey} without a manifest (a copy under way, or debris of an incomplete one): left as it is`,
      };
    }
    return { ...entry, status: 'failed', reason: `${where}: ${(error as Error).message}; not copied` };
  }
}

/** The WAL segments from the backup's start to its stop, which its store must hold. */
function neededWal(manifest: BaseManifest): string[] {
  const names = [manifest.startWal];
  while ((names.at(-1) as string) < manifest.stopWal && names.length < 1_000_000) {
    names.push(nextSegmentName(names.at(-1) as string, manifest.walSegmentBytes));
  }
  return names;
}

/** A version 1 manifest, whose base backup keeps PostgreSQL's backup_manifest apart too. */
type ApartManifest = Extract<BaseManifest, { backupManifest: unknown }>;

/** PostgreSQL's backup_manifest, checked against what the base manifest records, then stored. */
async function copyBackupManifest(
  manifest: ApartManifest,
  from: BackupStore,
  to: RoleStore,
  key: string,
): Promise<ApartManifest['backupManifest']> {
  const bytes = await from.getBytes(manifest.backupManifest.key);
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length !== manifest.backupManifest.sizeBytes || digest !== manifest.backupManifest.sha256) {
    throw new Error(
      `${manifest.backupManifest.key} does not match its manifest (${bytes.length} bytes, sha256 ${digest}; expected ${manifest.backupManifest.sizeBytes} bytes, ${manifest.backupManifest.sha256})`,
    );
  }
  await to.store.putBytes(key, bytes, { storageClass: to.storageClass });
  return { ...manifest.backupManifest, key };
}

/** The last PITR drill's report goes along where the target has none: a report, not the backup. */
async function copyDrillReport(
  cluster: string,
  manifest: BaseManifest,
  from: BackupStore,
  to: BackupStore,
  key: string,
): Promise<void> {
  const own = baseBackupKeys(from.prefix, cluster, manifest.id).drillReport;
  if (!(await from.head(own).catch(() => undefined)) || (await to.head(key).catch(() => undefined))) return;
  await to.putBytes(key, await from.getBytes(own), { contentType: 'application/json' }).catch(() => {});
}
