import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import {
  type KeyringNode,
  KmsKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from '@aws-crypto/client-node';
import type { KMS } from '@aws-sdk/client-kms';
import { KeyUnavailableError } from '../domain/errors.js';

/** Where a stage's data key is wrapped: a KMS key (id, ARN or alias), or a key file of its own. */
export type KeySource = { readonly kmsKeyId: string } | { readonly keyFile: string };

/** A keyring ready to encrypt and decrypt, and the key it stands for as manifests record it. */
export interface StageKey {
  /** The KMS key's ARN (an alias resolved), or `key-file:<fingerprint>`: never key material. */
  readonly keyId: string;
  /** How a person names the key: the configured id or alias, or the key file's path. */
  readonly label: string;
  readonly keyring: KeyringNode;
  /**
   * Proves the key can make data keys for this stage now (KMS: one GenerateDataKey with the
   * stage in its context, what every object asks for), so that a write fails before it begins.
   */
  check(): Promise<void>;
}

/**
 * Opens the stage's key: for KMS, finds the key (an alias resolves to its key's ARN, which is
 * what an encrypted message names) and checks it is enabled; for a key file, that it is there,
 * private (no group or other permissions) and holds 256 bits. Throws KeyUnavailableError
 * naming the key, never its material.
 */
export async function openStageKey(
  source: KeySource,
  stage: string,
  kms: () => Promise<KMS>,
): Promise<StageKey> {
  return 'kmsKeyId' in source ? openKmsKey(source.kmsKeyId, stage, await kms()) : openKeyFile(source.keyFile);
}

async function openKmsKey(configured: string, stage: string, kms: KMS): Promise<StageKey> {
  const unavailable = (why: string, cause?: unknown) =>
    new KeyUnavailableError(`KMS key ${configured} ${why}`, cause === undefined ? undefined : { cause });
  let arn: string | undefined;
  try {
    const described = await kms.describeKey({ KeyId: configured });
    arn = described.KeyMetadata?.Arn;
    const state = described.KeyMetadata?.KeyState;
    if (state && state !== 'Enabled') throw unavailable(`is ${state.toLowerCase()}, not enabled`);
  } catch (error) {
    if (error instanceof KeyUnavailableError) throw error;
    throw unavailable(kmsReason(error), error);
  }
  if (!arn) throw unavailable('has no ARN in KMS DescribeKey');
  const keyId = arn;
  return {
    keyId,
    label: configured,
    keyring: new KmsKeyringNode({ generatorKeyId: keyId, clientProvider: () => kms }),
    async check() {
      try {
        await kms.generateDataKey({
          KeyId: keyId,
          KeySpec: 'AES_256',
          EncryptionContext: { 'pgbp:stage': stage },
        });
      } catch (error) {
        throw unavailable(kmsReason(error), error);
      }
    },
  };
}

/** Why KMS refused, in words; the SDK's own message names the operation, never key material. */
function kmsReason(error: unknown): string {
  const name = (error as { name?: string }).name ?? '';
  const message = (error as Error).message ?? String(error);
  if (name === 'NotFoundException') return `does not exist: ${message}`;
  if (name === 'DisabledException' || name === 'KMSInvalidStateException')
    return `is not enabled: ${message}`;
  if (name === 'AccessDeniedException' || /not authorized|access ?denied/i.test(message))
    return `may not be used by this process: ${message}`;
  // A refusal whose body is not KMS's own (a proxy's, an endpoint policy's): the status says it.
  if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 403)
    return 'may not be used by this process: KMS refused the call (HTTP 403 Forbidden)';
  return `cannot be used: ${name ? `${name}: ` : ''}${message}`;
}

const KEY_FILE_NAMESPACE = 'pgbp-key-file';

async function openKeyFile(path: string): Promise<StageKey> {
  const unavailable = (why: string, cause?: unknown) =>
    new KeyUnavailableError(`key file ${path} ${why}`, cause === undefined ? undefined : { cause });
  let mode: number;
  let raw: Buffer;
  try {
    mode = (await stat(path)).mode;
    raw = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw unavailable(code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? 'error'})`, error);
  }
  if ((mode & 0o077) !== 0) {
    throw unavailable(
      `is readable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): make it private with chmod 600`,
    );
  }
  const key = keyBytes(raw);
  if (!key) {
    throw unavailable(
      'does not hold a 256-bit key: expected 32 bytes, or 64 hex digits, or 44 characters of base64',
    );
  }
  // The fingerprint names the key in every message and manifest; a hash of the key under a
  // label of its own, so that it tells keys apart and gives nothing away.
  const fingerprint = createHash('sha256').update('pgbp key file\0').update(key).digest('hex').slice(0, 16);
  return {
    keyId: `key-file:${fingerprint}`,
    label: path,
    keyring: new RawAesKeyringNode({
      keyNamespace: KEY_FILE_NAMESPACE,
      keyName: fingerprint,
      unencryptedMasterKey: key,
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    }),
    check: async () => {},
  };
}

function keyBytes(raw: Buffer): Uint8Array | undefined {
  if (raw.length === 32) return new Uint8Array(raw);
  const text = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Uint8Array(Buffer.from(text, 'hex'));
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return new Uint8Array(Buffer.from(text, 'base64'));
  return undefined;
}
