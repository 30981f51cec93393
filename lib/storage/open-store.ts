import type { EncryptionSettings } from '../config.js';
import type { BackupStore } from './store.js';

/**
 * Opens the store named by a URL (`s3://bucket/prefix`, `file:///dir`, or `file:dir` relative to
 * the working directory), with the stage's settings: encrypting every data object on the client
 * when the stage has `encryption`. Each adapter loads only when its kind is asked for: the AWS
 * SDK is most of what a process loads, and a dump to a directory should not wait for it.
 */
export async function openStore(url: string, config?: StoreSettings): Promise<BackupStore> {
  const store = await openPlainStore(url, config);
  return config?.encryption && config.stage
    ? withEncryption(store, config.encryption, config.stage, config.bucketRegion)
    : store;
}

/** The settings a store is opened with: the stage's, or one store's own over them. */
export interface StoreSettings {
  readonly kmsKeyId?: string | undefined;
  readonly storageClass?: string;
  /** Client-side encryption of the data objects, under `stage`'s key. */
  readonly encryption?: EncryptionSettings | undefined;
  readonly stage?: string;
  /**
   * The region of an s3:// store's bucket and of its keys, where it is not the process's (a
   * store's own `region`). Not named `region`: a stage's config is passed as settings too, and its
   * `region` is the stage's, which the process's default clients already use.
   */
  readonly bucketRegion?: string | undefined;
}

/** The store named by a URL as it is, with no client-side encryption. */
export async function openPlainStore(
  url: string,
  config?: Pick<StoreSettings, 'kmsKeyId' | 'storageClass' | 'bucketRegion'>,
): Promise<BackupStore> {
  if (url.startsWith('s3://')) {
    const [{ S3Store }, { s3ClientIn }] = await Promise.all([
      import('./s3-store.js'),
      import('../platform/aws-clients/s3.js'),
    ]);
    return S3Store.fromUrl(url, {
      kmsKeyId: config?.kmsKeyId,
      storageClass: config?.storageClass,
      ...(config?.bucketRegion ? { client: s3ClientIn(config.bucketRegion) } : {}),
    });
  }
  if (url.startsWith('file:')) {
    const { FileStore } = await import('./file-store.js');
    return FileStore.fromUrl(url);
  }
  throw new RangeError(
    `unknown store URL ${JSON.stringify(url)}: expected s3://bucket/prefix, file:///dir or file:relative/dir`,
  );
}

/**
 * Wraps any store (each of several, with settings of its own) in client-side encryption under
 * the stage's key. The key opens on first use; the Encryption SDK loads only here. A KMS key is
 * looked up in `region` where one is given (a second store's key lives in its bucket's region).
 */
export async function withEncryption(
  store: BackupStore,
  settings: EncryptionSettings,
  stage: string,
  region?: string,
): Promise<BackupStore> {
  const [{ encryptingStore }, { openStageKey }] = await Promise.all([
    import('./encrypting-store.js'),
    import('./keyrings.js'),
  ]);
  const label = settings.kmsKeyId ?? settings.keyFile ?? '';
  const source = settings.kmsKeyId !== undefined ? { kmsKeyId: label } : { keyFile: label };
  const kms = async () => {
    const clients = await import('../platform/aws-clients/kms.js');
    return region ? clients.kmsClientIn(region) : clients.kmsClient();
  };
  return encryptingStore(store, () => openStageKey(source, stage, kms), {
    stage,
    label,
  });
}
