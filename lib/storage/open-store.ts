import type { BackupStore } from './store.js';

/**
 * Opens the store named by a URL (`s3://bucket/prefix`, `file:///dir`, or `file:dir` relative to
 * the working directory), with the stage's
 * settings. Each adapter loads only when its kind is asked for: the AWS SDK is most of what a
 * process loads, and a dump to a directory should not wait for it.
 */
export async function openStore(
  url: string,
  config?: { readonly kmsKeyId?: string | undefined; readonly storageClass?: string },
): Promise<BackupStore> {
  if (url.startsWith('s3://')) {
    const { S3Store } = await import('./s3-store.js');
    return S3Store.fromUrl(url, { kmsKeyId: config?.kmsKeyId, storageClass: config?.storageClass });
  }
  if (url.startsWith('file:')) {
    const { FileStore } = await import('./file-store.js');
    return FileStore.fromUrl(url);
  }
  throw new RangeError(
    `unknown store URL ${JSON.stringify(url)}: expected s3://bucket/prefix, file:///dir or file:relative/dir`,
  );
}
