import * as z from 'zod';
import { isKeyableDatabaseName, parseBackupId, TIERS, type Tier } from './backup-layout.js';

import { CODECS } from './codecs.js';

export { CODECS, type Codec } from './codecs.js';

export const MANIFEST_VERSION = 1;

/** A database name usable in keys, and a backup id of that database: what events name a backup by. */
export const backupReferenceSchema = z
  .object({
    database: z.string().refine(isKeyableDatabaseName, 'expected a database name'),
    backupId: z
      .string()
      .refine((v) => parseBackupId(v) !== undefined, 'expected a backup id <database>-<yyyymmddThhmmssZ>'),
  })
  .refine((e) => parseBackupId(e.backupId)?.database === e.database, {
    message: 'the backup id belongs to another database',
    path: ['backupId'],
  });

const isoDate = z.iso.datetime({ offset: false });

/** The message format of client-side encryption: the AWS Encryption SDK's, read by its CLI too. */
export const ENVELOPE_FORMAT = 'aws-encryption-sdk';

/**
 * How an object was encrypted on the client, before it left pgbp: the AWS Encryption SDK's
 * message format, the key that wraps its data key (a KMS key's ARN, or `key-file:<fingerprint>`),
 * the algorithm suite, the frame length and the encryption context it is bound to.
 */
export const envelopeSchema = z.object({
  format: z.literal(ENVELOPE_FORMAT),
  keyId: z.string().min(1),
  suite: z.string().min(1),
  frameLength: z.number().int().positive(),
  context: z.record(z.string(), z.string()),
});

export type Envelope = z.infer<typeof envelopeSchema>;

/** Server-side encryption as the store reports it, and client-side encryption when there was one. */
export const encryptionSchema = z.object({
  type: z.enum(['SSE-KMS', 'AES256', 'none']),
  kmsKeyId: z.string().optional(),
  /** Absent in manifests written before client-side encryption, and for plaintext objects. */
  envelope: envelopeSchema.optional(),
});

export type Encryption = z.infer<typeof encryptionSchema>;

export const manifestSchema = z
  .object({
    manifestVersion: z.literal(MANIFEST_VERSION),
    id: z.string().refine((v) => parseBackupId(v) !== undefined, 'a backup id <database>-<yyyymmddThhmmssZ>'),
    database: z.string().refine(isKeyableDatabaseName, 'a database name usable in a key'),
    tier: z.enum(TIERS as [Tier, ...Tier[]]),
    createdAt: isoDate,
    finishedAt: isoDate,
    durationMs: z.number().int().nonnegative(),
    format: z.literal('custom'),
    compression: z.object({
      codec: z.enum(CODECS),
      level: z.number().int().nullable(),
    }),
    sizeBytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    serverVersion: z.string().min(1),
    pgDumpVersion: z.string().min(1),
    key: z.string().min(1),
    storageClass: z.string().min(1),
    encryption: encryptionSchema,
    tables: z.array(
      z.object({
        schema: z.string(),
        name: z.string(),
        kind: z.enum(['table', 'partitioned table']),
        rowEstimate: z.number().int(),
        /** Analyzed after its last change when dumped; absent in older manifests. */
        statsFresh: z.boolean().optional(),
        /** Its owner and privileges (aclitem text, null for the defaults) when dumped; absent in older manifests. */
        owner: z.string().optional(),
        acl: z.array(z.string()).nullable().optional(),
      }),
    ),
    /**
     * Session settings pg_dump left as the server had them and that shape the dumped text, so a
     * restored table can be read back the same way; absent in older manifests.
     */
    dumpSettings: z
      .object({ timeZone: z.string(), byteaOutput: z.string(), lcMonetary: z.string() })
      .optional(),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;

/** Parses a stored manifest; throws a ZodError naming the bad field. */
export function parseManifest(value: unknown): Manifest {
  return manifestSchema.parse(value);
}
