import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kmsClient } from '../../lib/platform/aws-clients/kms.js';
import { tempDir } from './temp.js';

/** A fresh 256-bit key file, private to its owner, in a directory of its own (removed after the test file). */
export async function keyFile(mode = 0o600): Promise<string> {
  const path = join(tempDir('pgbp-key-'), 'stage.key');
  await writeFile(path, randomBytes(32), { mode });
  return path;
}

/** A fresh KMS key on the moto server with an alias of its own; returns the alias and the key's ARN. */
export async function kmsKey(
  label = 'stage',
): Promise<{ readonly alias: string; readonly arn: string; readonly id: string }> {
  const kms = kmsClient();
  const created = await kms.createKey({ Description: `pgbp test ${label}` });
  const id = created.KeyMetadata?.KeyId ?? '';
  const alias = `alias/pgbp-${label}-${randomBytes(4).toString('hex')}`;
  await kms.createAlias({ AliasName: alias, TargetKeyId: id });
  return { alias, arn: created.KeyMetadata?.Arn ?? '', id };
}
