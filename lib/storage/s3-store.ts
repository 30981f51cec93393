import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  RestoreObjectCommand,
  type S3Client,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { ArchivedBackupError, ObjectExistsError } from '../domain/errors.js';
import { s3Client } from '../platform/aws-clients/s3.js';
import type { Body } from './byte-source.js';
import { S3DirectGet } from './s3-direct-get.js';
import { errorName, isNotFound, isPreconditionFailed, tagging } from './s3-errors.js';
import { uploadStream } from './s3-upload.js';
import {
  type BackupStore,
  type DeleteResult,
  type IncompleteUpload,
  needsThaw,
  type ObjectDetails,
  type ObjectInfo,
  type PutOptions,
  type StoreCapabilities,
  type ThawState,
} from './store.js';

export interface S3StoreOptions {
  /** SSE-KMS key (id, ARN or alias) for every object written; SSE-S3 when absent. */
  readonly kmsKeyId?: string;
  readonly storageClass?: string;
  /** Parts uploaded at once; memory is about this many parts. */
  readonly queueSize?: number;
  readonly client?: S3Client;
}

const DELETE_BATCH = 1000;

/** `ongoing-request="false", expiry-date="…"` → a thaw state. */
export function parseRestoreHeader(storageClass: string, header: string | undefined): ThawState {
  if (!needsThaw(storageClass)) return { state: 'not-archived' };
  if (!header) return { state: 'archived' };
  if (/ongoing-request="true"/.test(header)) return { state: 'in-progress' };
  const expiry = /expiry-date="([^"]+)"/.exec(header)?.[1];
  return expiry ? { state: 'available', until: new Date(expiry) } : { state: 'available' };
}

/**
 * An S3 bucket (or any S3-compatible endpoint) as a backup store. Dumps stream up in parts
 * that grow with the stream; completion is conditional on the key being absent
 * (`If-None-Match: *`), and any failure aborts the multipart upload.
 */
export class S3Store implements BackupStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly options: S3StoreOptions;
  private readonly client: S3Client;

  /**
   * Archive classes and thaw, Object Lock, uploads in parts that a killed run leaves open, and
   * objects read by a plain signed GET.
   */
  readonly capabilities: StoreCapabilities;

  constructor(bucket: string, prefix: string, options: S3StoreOptions = {}) {
    this.bucket = bucket;
    this.prefix = prefix.replace(/^\/+|\/+$/g, '');
    this.url = `s3://${bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.options = options;
    this.client = options.client ?? s3Client();
    this.capabilities = {
      archive: { thaw: (key, thawOptions) => this.thaw(key, thawOptions) },
      objectLock: { bucket: this.bucket, client: this.client },
      partUploads: {
        incomplete: (under) => this.incompleteUploads(under),
        abort: (upload) => this.abortUpload(upload),
      },
      directGet: new S3DirectGet(this.client, this.bucket),
    };
  }

  static fromUrl(url: string, options: S3StoreOptions = {}): S3Store {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
    if (!m?.[1]) throw new RangeError(`not an s3:// URL: ${url}`);
    return new S3Store(m[1], m[2] ?? '', options);
  }

  private encryption(): { ServerSideEncryption: ServerSideEncryption; SSEKMSKeyId?: string } {
    return this.options.kmsKeyId
      ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: this.options.kmsKeyId }
      : { ServerSideEncryption: 'AES256' };
  }

  putStream(key: string, body: Body, options: PutOptions = {}): Promise<{ bytes: number }> {
    return uploadStream(
      {
        client: this.client,
        bucket: this.bucket,
        url: this.url,
        encryption: this.encryption(),
        ...(this.options.storageClass ? { storageClass: this.options.storageClass } : {}),
        queueSize: this.options.queueSize ?? 2,
      },
      key,
      body,
      options,
    );
  }

  async putBytes(key: string, data: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    const body = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentLength: body.length,
          ContentType: options.contentType ?? 'application/json',
          Tagging: tagging(options.tags),
          ...this.encryption(),
          ...(options.replace ? {} : { IfNoneMatch: '*' }),
        }),
      );
    } catch (error) {
      if (isPreconditionFailed(error)) {
        throw new ObjectExistsError(`${key} already exists in ${this.url}; refusing to overwrite it`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  async getStream(key: string): Promise<Readable> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body as Readable;
    } catch (error) {
      if (errorName(error) === 'InvalidObjectState') {
        throw new ArchivedBackupError(
          `${key} is in an archive storage class and cannot be read until it is thawed: run \`pgbp thaw\` and retry once it is available`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  async getBytes(key: string): Promise<Buffer> {
    const stream = await this.getStream(key);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async head(key: string): Promise<ObjectDetails | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      const storageClass = out.StorageClass ?? 'STANDARD';
      const lockUntil = out.ObjectLockRetainUntilDate;
      const legalHold = out.ObjectLockLegalHoldStatus === 'ON';
      return {
        key,
        size: out.ContentLength ?? 0,
        lastModified: out.LastModified ?? new Date(0),
        storageClass,
        thaw: parseRestoreHeader(storageClass, out.Restore),
        ...(lockUntil || legalHold
          ? { lock: { mode: out.ObjectLockMode, retainUntil: lockUntil, legalHold } }
          : {}),
        encryption:
          out.ServerSideEncryption === 'aws:kms'
            ? { type: 'SSE-KMS', kmsKeyId: out.SSEKMSKeyId }
            : out.ServerSideEncryption === 'AES256'
              ? { type: 'AES256' }
              : { type: 'none' },
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of out.Contents ?? []) {
        if (!o.Key) continue;
        yield {
          key: o.Key,
          size: o.Size ?? 0,
          lastModified: o.LastModified ?? new Date(0),
          storageClass: o.StorageClass ?? 'STANDARD',
        };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async *incompleteUploads(prefix: string): AsyncIterable<IncompleteUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const out = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(keyMarker ? { KeyMarker: keyMarker } : {}),
          ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
        }),
      );
      for (const u of out.Uploads ?? []) {
        if (u.Key && u.UploadId)
          yield { key: u.Key, uploadId: u.UploadId, initiated: u.Initiated ?? new Date(0) };
      }
      if (!out.IsTruncated) return;
      keyMarker = out.NextKeyMarker;
      uploadIdMarker = out.NextUploadIdMarker;
    }
  }

  async abortUpload(upload: IncompleteUpload): Promise<void> {
    await this.client.send(
      new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.key, UploadId: upload.uploadId }),
    );
  }

  async deleteMany(keys: readonly string[]): Promise<DeleteResult> {
    const deleted: string[] = [];
    const failed: { key: string; code: string; message: string }[] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      const errors = new Map((out.Errors ?? []).map((e) => [e.Key ?? '', e]));
      for (const key of batch) {
        const e = errors.get(key);
        if (e) failed.push({ key, code: e.Code ?? 'Error', message: e.Message ?? '' });
        else deleted.push(key);
      }
    }
    return { deleted, failed };
  }

  async getTags(key: string): Promise<Record<string, string>> {
    const out = await this.client.send(new GetObjectTaggingCommand({ Bucket: this.bucket, Key: key }));
    return Object.fromEntries((out.TagSet ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  }

  async putTags(key: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await this.client.send(
      new PutObjectTaggingCommand({
        Bucket: this.bucket,
        Key: key,
        Tagging: { TagSet: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
      }),
    );
  }

  async thaw(key: string, options: { tier: string; days: number }): Promise<ThawState> {
    const before = await this.head(key);
    if (!before) throw new RangeError(`no object ${key} in ${this.url}`);
    if (before.thaw.state !== 'archived') return before.thaw;
    try {
      await this.client.send(
        new RestoreObjectCommand({
          Bucket: this.bucket,
          Key: key,
          RestoreRequest: {
            Days: options.days,
            GlacierJobParameters: { Tier: options.tier as 'Standard' | 'Bulk' | 'Expedited' },
          },
        }),
      );
    } catch (error) {
      if (errorName(error) !== 'RestoreAlreadyInProgress') throw error;
    }
    const after = await this.head(key);
    return after && after.thaw.state !== 'archived' ? after.thaw : { state: 'requested' };
  }
}
