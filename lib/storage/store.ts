import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { KeyUnavailableError } from '../domain/errors.js';
import type { Encryption, Envelope } from '../domain/manifest.js';
import type { Body } from './byte-source.js';

/** Thaw state of an archived object: S3 `RestoreObject` as people read it. */
export type ThawState =
  | { readonly state: 'not-archived' }
  | { readonly state: 'archived' }
  | { readonly state: 'requested' }
  | { readonly state: 'in-progress' }
  | { readonly state: 'available'; readonly until?: Date };

export interface ObjectLock {
  readonly mode?: string;
  readonly retainUntil?: Date;
  readonly legalHold?: boolean;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  readonly lastModified: Date;
  /** STANDARD for the file store; S3's class otherwise (GLACIER, DEEP_ARCHIVE, …). */
  readonly storageClass: string;
}

export interface ObjectDetails extends ObjectInfo {
  readonly thaw: ThawState;
  readonly lock?: ObjectLock;
  readonly encryption: { readonly type: 'SSE-KMS' | 'AES256' | 'none'; readonly kmsKeyId?: string };
}

export interface PutOptions {
  readonly tags?: Readonly<Record<string, string>>;
  readonly storageClass?: string;
  readonly contentType?: string;
  /** Called with the running byte count as the body is stored. */
  readonly onProgress?: (bytes: number) => void;
  /** Replace an existing object. Only derived reports use this; backups never do. */
  readonly replace?: boolean;
}

/** What a stream write stored. */
export interface StoredBody {
  /** Bytes stored, which is what `head` and listings report as the object's size. */
  readonly bytes: number;
  /**
   * The SHA-256 of the stored bytes, from a wrapper that changed them on the way (encryption);
   * absent where the store stored what it was given, whose digest the writer has.
   */
  readonly sha256?: string;
}

export interface GetOptions {
  /**
   * What the stored object must be (its manifest's size and digest): a wrapper that changes the
   * bytes it returns (decryption) checks the stored ones itself, failing the stream before its
   * end; other stores return the stored bytes for the caller to check.
   */
  readonly expect?: { readonly sha256: string; readonly bytes: number };
}

export interface DeleteResult {
  readonly deleted: readonly string[];
  readonly failed: readonly { readonly key: string; readonly code: string; readonly message: string }[];
}

/** A multipart upload begun and never completed or aborted: what a killed upload to S3 leaves. */
export interface IncompleteUpload {
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
}

export interface FreeSpace {
  readonly totalBytes: number;
  readonly freeBytes: number;
}

/**
 * A new object that another process writes straight into a file (stores on a file system):
 * the bytes then never pass through this process. Nothing is visible under the key until
 * `commit`.
 */
export interface FileSink {
  /** The temporary file, open for reading and writing; its `fd` can be a child's stdout. */
  readonly handle: FileHandle;
  /** Syncs the file to disk and makes it the object (refusing an existing one unless `replace`). */
  commit(): Promise<void>;
  /** Closes and removes the temporary file: nothing is left. */
  abort(): Promise<void>;
}

/**
 * Where backups live: an S3 bucket or a directory (the on-premises NAS), or a wrapper of one
 * (encryption, a second store). Writes are atomic and never overwrite: an object either exists
 * complete, or not at all.
 *
 * The core is what every store does: put a stream, get a stream, head, list, delete many; the
 * whole-object forms of put and get for manifests, reports and WAL files, which a store may
 * write in one request; and the tags an object carries (its retention tier, which lifecycle
 * rules read). What only some stores can do is in {@link StoreCapabilities}, found by asking
 * for it, never by the kind of store: a wrapper that cannot keep a capability true (an
 * encrypting wrapper cannot let a compressor write into the inner store's file) leaves it out,
 * and callers take the general path.
 */
export interface BackupStore {
  /** The store's URL, safe to print. */
  readonly url: string;
  /** Key prefix under which the catalog lives ('' for a directory). */
  readonly prefix: string;
  /**
   * Writes a stream, or a byte source that fills the store's own buffers, to `key`; refuses
   * with ObjectExistsError when the key exists; leaves nothing on failure.
   */
  putStream(key: string, body: Body, options?: PutOptions): Promise<StoredBody>;
  /** A readable of the object; ArchivedBackupError when it must be thawed first. */
  getStream(key: string, options?: GetOptions): Promise<Readable>;
  /** Details of one object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectDetails | undefined>;
  /**
   * Every object under `prefix`, in key order, paging as needed; for the file store also the
   * temporary files of writes that never completed (`<dir>/.<name>.partial-<hex>`), as debris.
   */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes keys in batches of at most 1,000; a key that cannot be deleted is reported, not thrown. */
  deleteMany(keys: readonly string[]): Promise<DeleteResult>;
  /** Writes a small object (manifest, report) atomically; refuses to overwrite unless `replace`. */
  putBytes(key: string, data: Uint8Array | string, options?: PutOptions): Promise<void>;
  getBytes(key: string): Promise<Buffer>;
  getTags(key: string): Promise<Record<string, string>>;
  putTags(key: string, tags: Readonly<Record<string, string>>): Promise<void>;
  /** What this store can do beyond the core. */
  readonly capabilities: StoreCapabilities;
}

/** Optional capabilities of a store; each is absent where the store has no such thing. */
export interface StoreCapabilities {
  /** Archive storage classes, whose objects must be thawed before they can be read (S3 Glacier). */
  readonly archive?: ArchiveTiers;
  /** The store is a directory on this machine. */
  readonly local?: LocalFiles;
  /** Objects can be under Object Lock (retention dates, legal holds). */
  readonly objectLock?: ObjectLocking;
  /** Objects are uploaded in parts, which a killed upload leaves behind until aborted. */
  readonly partUploads?: PartUploads;
  /** Data objects are encrypted on the client before they reach the store (lib/storage/encrypting-store.ts). */
  readonly envelope?: EnvelopeEncryption;
  /**
   * Objects read by one plain request each, cheaper than getStream (S3: lib/storage/s3-direct-get.ts).
   * Absent over a wrapper that changes the bytes it stores, as `local` is.
   */
  readonly directGet?: DirectGet;
}

export interface DirectGet {
  /**
   * The object's body, without getStream's retries and errors: for a reader that checks what it
   * reads and reads again through getStream on any failure (the prefetcher). Undefined when this
   * store's objects cannot be read this way.
   */
  open(key: string): Promise<Readable | undefined>;
}

export interface EnvelopeEncryption {
  /** How a person names the key (the configured id or alias, the key file's path). */
  readonly label: string;
  /**
   * Opens the key and proves it can encrypt now; resolves with the key's id as manifests
   * record it (a KMS key's ARN, `key-file:…`). KeyUnavailableError naming the key otherwise:
   * a write asks first, so that it fails before it creates anything.
   */
  ready(): Promise<string>;
  /** Opens the key (no data key is made: enough to decrypt) and resolves with its id. */
  keyId(): Promise<string>;
  /** How the object at `key` is encrypted when written through this store; undefined for the catalog's. */
  describe(key: string): Promise<Envelope | undefined>;
}

export interface ArchiveTiers {
  /** Asks for an archived object to be made readable; reports where that stands. */
  thaw(key: string, options: { readonly tier: string; readonly days: number }): Promise<ThawState>;
}

export interface LocalFiles {
  /** Free space where the store keeps its data; undefined while its directory does not exist. */
  freeSpace(): Promise<FreeSpace | undefined>;
  /**
   * A file another process can write a new object into, its bytes never passing through this
   * one; refuses with ObjectExistsError when the key exists. Absent over a wrapper that changes
   * the bytes it stores (encryption): the fast path of lib/storage/child-output.ts then does
   * not apply.
   */
  openSink?(key: string, options?: PutOptions): Promise<FileSink>;
  /**
   * The file that holds the object at `key`, for another process to read its stored bytes
   * itself (zstd decompressing a WAL segment), the bytes never passing through this one. Absent
   * over a wrapper whose readers get other bytes than it stores (encryption).
   */
  fileOf?(key: string): string;
}

/**
 * Where the Object Lock setting is read (lib/storage/object-lock.ts): the S3 bucket and its
 * client. Data rather than a method, so that only what asks (retention) carries the S3 command,
 * and the permission for it.
 */
export interface ObjectLocking {
  readonly bucket: string;
  readonly client: S3Client;
}

export interface PartUploads {
  /** Uploads under `prefix` that were begun and never completed or aborted. */
  incomplete(prefix: string): AsyncIterable<IncompleteUpload>;
  /** Aborts an incomplete upload, freeing its parts. */
  abort(upload: IncompleteUpload): Promise<void>;
}

/**
 * What a manifest records of how the object at `key` is encrypted: the store's own server-side
 * encryption as `head` reported it, and the client-side envelope when the store encrypts data
 * objects before storing them.
 */
export async function encryptionOf(
  store: BackupStore,
  key: string,
  serverSide: ObjectDetails['encryption'] | undefined,
): Promise<Encryption> {
  const envelope = await store.capabilities.envelope?.describe(key);
  return { ...(serverSide ?? { type: 'none' }), ...(envelope ? { envelope } : {}) };
}

/** What a manifest says of its object, to check it as it is read. */
interface StoredObject {
  readonly id: string;
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly encryption: Encryption;
}

/**
 * How to read an object against its manifest. An encrypted object reaches the reader as
 * plaintext, so the store checks the stored bytes' size and digest itself (`check` is then
 * false); otherwise the reader hashes what it reads, which is what is stored.
 */
export function readAgainst(object: StoredObject): { readonly options: GetOptions; readonly check: boolean } {
  return object.encryption.envelope
    ? { options: { expect: { sha256: object.sha256, bytes: object.sizeBytes } }, check: false }
    : { options: {}, check: true };
}

/**
 * Refuses, before anything is read, an object encrypted under another key than the store's
 * (another stage's), or encrypted while the store has no key at all.
 */
export async function requireKeyFor(store: BackupStore, object: StoredObject): Promise<void> {
  const envelope = object.encryption.envelope;
  if (!envelope) return;
  const own = store.capabilities.envelope;
  if (!own) {
    throw new KeyUnavailableError(
      `${object.id} is encrypted under key ${envelope.keyId}, and this stage has no encryption key configured (encryption: { kmsKeyId | keyFile })`,
    );
  }
  const keyId = await own.keyId();
  if (keyId !== envelope.keyId) {
    throw new KeyUnavailableError(
      `${object.id} is encrypted under key ${envelope.keyId}, not this stage's key ${own.label} (${keyId}): it belongs to another stage`,
    );
  }
}

export const ARCHIVE_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE', 'GLACIER_IR']);

/** Whether objects of this storage class must be thawed before they can be read. */
export function needsThaw(storageClass: string): boolean {
  return storageClass === 'GLACIER' || storageClass === 'DEEP_ARCHIVE';
}
