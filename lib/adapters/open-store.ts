import type { Config } from '../config.js';
import { FileStore } from './file-store.js';
import { S3Store } from './s3-store.js';
import type { BackupStore } from './store.js';

/** Opens the store named by a URL (`s3://bucket/prefix` or `file:///dir`), with the stage's settings. */
export function openStore(url: string, config?: Pick<Config, 'kmsKeyId' | 'storageClass'>): BackupStore {
  if (url.startsWith('s3://')) {
    return S3Store.fromUrl(url, { kmsKeyId: config?.kmsKeyId, storageClass: config?.storageClass });
  }
  if (url.startsWith('file://')) return FileStore.fromUrl(url);
  throw new RangeError(
    `unknown store URL ${JSON.stringify(url)}: expected s3://bucket/prefix or file:///dir`,
  );
}
