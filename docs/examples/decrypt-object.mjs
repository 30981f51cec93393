// Decrypts one object that pgbp stored, with the AWS Encryption SDK alone: no pgbp code.
//
//   node decrypt-object.mjs MANIFEST.json ENCRYPTED OUTPUT [KEY_FILE]
//
// The manifest says how the object was encrypted (encryption.envelope): the key (a KMS key's
// ARN, or key-file:<fingerprint> for a stage's key file, given as KEY_FILE) and the context the
// object is bound to, which is checked here too. KMS is reached as the AWS CLI reaches it
// (AWS_REGION, credentials, AWS_ENDPOINT_URL). Frames are authenticated before their plaintext
// is written; on any failure OUTPUT is removed.
import { createReadStream, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import {
  buildClient,
  CommitmentPolicy,
  KmsKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from '@aws-crypto/client-node';
import { KMS } from '@aws-sdk/client-kms';

const [manifestFile, input, output, keyFile] = process.argv.slice(2);
const { envelope } = JSON.parse(readFileSync(manifestFile, 'utf8')).encryption;

function keyring() {
  if (envelope.keyId.startsWith('key-file:')) {
    const raw = readFileSync(keyFile);
    const text = raw.toString('utf8').trim();
    const key = raw.length === 32 ? raw : Buffer.from(text, /^[0-9a-f]{64}$/i.test(text) ? 'hex' : 'base64');
    return new RawAesKeyringNode({
      keyNamespace: 'pgbp-key-file',
      keyName: envelope.keyId.slice('key-file:'.length),
      unencryptedMasterKey: new Uint8Array(key),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
  }
  const kms = new KMS({});
  return new KmsKeyringNode({ generatorKeyId: envelope.keyId, clientProvider: () => kms });
}

const { decryptUnsignedMessageStream } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const decrypt = decryptUnsignedMessageStream(keyring());
decrypt.once('MessageHeader', ({ encryptionContext }) => {
  for (const [name, value] of Object.entries(envelope.context)) {
    if (encryptionContext[name] !== value) decrypt.destroy(new Error(`context ${name} is not ${value}`));
  }
});
try {
  await pipeline(createReadStream(input), decrypt, createWriteStream(output, { mode: 0o600 }));
} catch (error) {
  rmSync(output, { force: true });
  console.error(`cannot decrypt ${input}: ${error.message}`);
  process.exit(1);
}
