import { FileStore } from '../../../lib/storage/file-store.js';
import { withEncryption } from '../../../lib/storage/open-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { keyFile, kmsKey } from '../../support/keys.js';
import { createBucket } from '../../support/s3.js';
import { scrambledStore } from '../../support/scrambled-store.js';
import { describeStoreContract } from '../../support/store-contract.js';
import { tempDir } from '../../support/temp.js';

const fileStore = async () => new FileStore(tempDir('pgbp-contract-'));
const s3Store = async () => new S3Store(await createBucket(), 'backups');

describeStoreContract('FileStore', fileStore);
describeStoreContract('S3Store', s3Store);
describeStoreContract('a wrapper over the FileStore', async () => scrambledStore(await fileStore()));
describeStoreContract('a wrapper over the S3Store', async () => scrambledStore(await s3Store()));
describeStoreContract('encryption under a key file over the FileStore', async () =>
  withEncryption(await fileStore(), { keyFile: await keyFile(), required: true }, 'local'),
);
describeStoreContract('encryption under a KMS key over the S3Store', async () =>
  withEncryption(await s3Store(), { kmsKeyId: (await kmsKey()).alias, required: true }, 'dev'),
);
