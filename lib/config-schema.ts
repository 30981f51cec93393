import * as z from 'zod';
import { isKeyableDatabaseName } from './domain/backup-layout.js';
import { CODECS } from './domain/codecs.js';
import { isClusterName } from './domain/physical-layout.js';
import { CHECK_DEPTHS } from './domain/restore-checks.js';
import { parseDuration, parseSize } from './domain/units.js';
import { fileStoreUrlProblem } from './storage/file-url.js';

/**
 * The schema of a stage's config file (config/<stage>.yml): every setting, its default, and
 * its numbers, durations and sizes parsed here once. Loading and finding the file, and the
 * types the rest of the code uses, are in config.ts. One file, near 380 lines, on
 * purpose: it is one schema, read top to bottom in the order of the file it describes.
 */

const size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const bytes = parseSize(v);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size such as 512 MiB or 2 GB, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration such as 90s, 30m or 24h, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const ratio = z.number().min(0).max(1);
const count = z.number().int().nonnegative();

const storeUrl = z
  .string()
  .regex(
    /^(s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?|file:.+)$/,
    'expected s3://bucket/prefix, file:///dir or file:relative/dir',
  )
  .superRefine((url, ctx) => {
    const problem = url.startsWith('file:') ? fileStoreUrlProblem(url) : undefined;
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

export const retention = z
  .object({
    daily: count.default(7),
    monthly: count.default(12),
    yearly: count.default(7),
    minKeep: z.number().int().min(1).default(3),
    debrisGrace: duration.prefault('24h'),
  })
  .strict();

export const sizeCheck = z
  .object({
    minBytes: size.optional(),
    maxBytes: size.optional(),
    baselineCount: z.number().int().min(1).default(7),
    /** Warn when a backup is smaller than this fraction of the baseline median (0.5: half). */
    warnBelowRatio: ratio.default(0.5),
    /** Warn when a backup is larger than this multiple of the baseline median. */
    warnAboveRatio: z.number().min(1).default(2),
    /** A dump this small is empty whatever else is configured. */
    emptyBytes: size.prefault('2 KiB'),
  })
  .strict();

/** Per-database overrides: the same fields with no defaults of their own, so the stage defaults show through. */
const retentionOverride = z
  .object({
    daily: count,
    monthly: count,
    yearly: count,
    minKeep: z.number().int().min(1),
    debrisGrace: duration,
  })
  .partial()
  .strict();

const sizeOverride = z
  .object({
    minBytes: size,
    maxBytes: size,
    baselineCount: z.number().int().min(1),
    warnBelowRatio: ratio,
    warnAboveRatio: z.number().min(1),
    emptyBytes: size,
  })
  .partial()
  .strict();

export const assertion = z
  .object({
    name: z.string().min(1),
    sql: z.string().min(1),
    expect: z
      .object({
        atLeast: z.number().optional(),
        atMost: z.number().optional(),
        equals: z.union([z.number(), z.string(), z.boolean()]).optional(),
        isTrue: z.literal(true).optional(),
      })
      .strict()
      .refine((e) => Object.keys(e).length > 0, 'an expectation: atLeast, atMost, equals or isTrue'),
  })
  .strict();

export const restore = z
  .object({
    /**
     * Leave owners (privileges) out of every restore. Off by default: they are kept wherever the
     * target server has the roles, and dropped, with a warning naming them, where it does not.
     */
    noOwner: z.boolean().default(false),
    noPrivileges: z.boolean().default(false),
    /**
     * How much fewer rows than fresh statistics of the source claimed a backup may hold before a
     * verify warns (the row check itself is exact: every table's rows as counted in the backup).
     */
    rowTolerance: ratio.default(0.1),
    /** `rows`: every table's row count equals the backup's; `content`: also every row's bytes. */
    depth: z.enum(CHECK_DEPTHS).prefault('rows'),
    jobs: z.number().int().min(1).max(64).default(1),
    /** Spool to local disk for parallel restore only when this much room remains afterwards. */
    spoolHeadroom: size.prefault('1 GiB'),
    spoolDir: z.string().optional(),
    thawTier: z.enum(['Expedited', 'Standard', 'Bulk']).prefault('Standard'),
    thawDays: z.number().int().min(1).default(2),
  })
  .strict();

export const database = z
  .object({
    name: z.string().refine(isKeyableDatabaseName, 'a database name of letters, digits, _ . $ -'),
    size: sizeOverride.optional(),
    retention: retentionOverride.optional(),
    assertions: z.array(assertion).default([]),
    /** This database's verify settings over defaults.restore. */
    restore: z
      .object({ depth: z.enum(CHECK_DEPTHS).optional() })
      .strict()
      .optional(),
  })
  .strict();

/**
 * Client-side encryption of every data object before it leaves pgbp: data keys wrapped by the
 * stage's KMS key (id, ARN or alias, on any endpoint), or by a key file of 32 bytes (or 64 hex
 * digits, or base64) readable by its owner alone, for stages with no AWS. `required` makes the
 * stage's status warn of every backup stored before encryption.
 */
export const encryption = z
  .object({
    kmsKeyId: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    required: z.boolean().default(false),
  })
  .strict()
  .refine((e) => (e.kmsKeyId === undefined) !== (e.keyFile === undefined), {
    message: 'set exactly one of kmsKeyId and keyFile',
  });

/**
 * One store of the two the guide keeps backups in: the primary (the on-premises NAS, for quick
 * recovery) and the secondary (S3, for geographic redundancy). Its retention is laid over the
 * database's: a store's own limits (the NAS keeps 7 daily backups) win.
 */
const storeRole = z
  .object({
    url: storeUrl,
    retention: retentionOverride.optional(),
    /** The S3 storage class of new objects in this store, over the stage's `storageClass`. */
    storageClass: z.enum(['STANDARD', 'STANDARD_IA', 'INTELLIGENT_TIERING', 'ONEZONE_IA']).optional(),
    /** The SSE-KMS key of this store (another region's bucket has its own), over the stage's `kmsKeyId`. */
    kmsKeyId: z.string().optional(),
    /** The client-side encryption of this store's data objects, over the stage's `encryption`. */
    encryption: encryption.optional(),
    /**
     * The AWS region of an s3:// store's bucket, where it is not the stage's (a second bucket in
     * another region): its S3 and KMS calls go there, and its keys' aliases are looked up there.
     */
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'an AWS region such as eu-central-1')
      .optional(),
  })
  .strict()
  .refine((s) => s.region === undefined || s.url.startsWith('s3://'), {
    path: ['region'],
    message: 'only an s3:// store has a region',
  });

export const configSchema = z
  .object({
    stage: z.enum(['local', 'dev', 'staging', 'prod']),
    mode: z.enum(['local', 'aws']).prefault('local'),
    /** The one store; or, with `stores`, absent (it is then `stores.primary.url`). */
    store: storeUrl.optional(),
    /** A primary and a secondary store, each backup written to both; instead of `store`. */
    stores: z.object({ primary: storeRole, secondary: storeRole.optional() }).strict().optional(),
    region: z.string().prefault('eu-west-1'),
    kmsKeyId: z.string().optional(),
    encryption: encryption.optional(),
    storageClass: z
      .enum(['STANDARD', 'STANDARD_IA', 'INTELLIGENT_TIERING', 'ONEZONE_IA'])
      .prefault('STANDARD'),
    connection: z
      .object({
        host: z.string().optional(),
        port: z.number().int().min(1).max(65535).optional(),
        user: z.string().optional(),
        sslmode: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
        /** Secrets Manager secret holding the password (a plain string or JSON with `password`). */
        passwordSecretId: z.string().optional(),
        /**
         * How the secret holds the password: JSON with a `password` field (what RDS and the
         * Secrets Manager console write) or the password alone. ECS injects PGPASSWORD by it.
         */
        passwordSecretFormat: z.enum(['json', 'plain']).default('json'),
      })
      .strict()
      .prefault({}),
    dump: z
      .object({
        compression: z.enum(CODECS).prefault('zstd'),
        level: z.number().int().min(-7).max(19).optional(),
        // zstd threads: 0 is one per core (the dump task's cores are its own: the server is
        // elsewhere); 1 compresses on one thread, for a machine that also runs the server.
        threads: z.number().int().min(0).default(0),
        heartbeat: duration.prefault('60s'),
        timeout: duration.prefault('6h'),
      })
      .strict()
      .prefault({}),
    defaults: z
      .object({
        retention: retention.prefault({}),
        size: sizeCheck.prefault({}),
        restore: restore.prefault({}),
        staleAfter: duration.prefault('24h'),
        minFreeSpaceRatio: ratio.default(0.2),
      })
      .strict()
      .prefault({}),
    databases: z.array(database).default([]),
    /**
     * Where a drill (a verify restore) restores: `scratch`, a throw-away server of its own
     * (initdb on the task's ephemeral storage, the image's server binaries); `server`, the
     * configured drill server; `source`, the server the backups come from, only when written so.
     */
    drill: z
      .object({
        target: z.enum(['scratch', 'server', 'source']).default('scratch'),
        server: z
          .object({
            host: z.string().min(1),
            port: z.number().int().min(1).max(65535).default(5432),
            user: z.string().min(1).default('postgres'),
            sslmode: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
            /** The drill server's password (Secrets Manager id or ARN, or ssm:/name); none: trust or certificates. */
            passwordSecretId: z.string().optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .refine((d) => d.target !== 'server' || d.server !== undefined, {
        message: 'target server needs drill.server (host, port, user)',
        path: ['server'],
      })
      .prefault({}),
    // Base backups and point-in-time recovery.
    basebackup: z
      .object({
        /** fast: the backup starts at once (an immediate checkpoint); spread: it waits for the next, gentler one. */
        checkpoint: z.enum(['fast', 'spread']).prefault('fast'),
        level: z.number().int().min(-7).max(19).default(1),
        // zstd threads: 0 is one per core (on Fargate the task's cores are its own).
        threads: z.number().int().min(0).default(0),
        /** How long the WAL from a backup's start to its stop may take to reach the archive. */
        walWait: duration.prefault('5m'),
        timeout: duration.prefault('12h'),
      })
      .strict()
      .prefault({}),
    pitr: z
      .object({
        /** Any second of this window is recoverable: base backups are kept for it, plus the newest older one. */
        window: duration.prefault('14d'),
        /** How long a recovered server may take to replay and promote. */
        recoveryTimeout: duration.prefault('2h'),
        /** Where the drill recovers into (scratch storage); the system's temporary directory by default. */
        scratchDir: z.string().optional(),
      })
      .strict()
      .prefault({}),
    alerts: z
      .object({
        console: z.boolean().default(true),
        snsTopicArn: z.string().optional(),
        slackWebhookSecretId: z.string().optional(),
        emails: z.array(z.email()).default([]),
      })
      .strict()
      .prefault({}),
    backup: z
      .object({ maxConcurrency: z.number().int().min(1).max(40).default(2) })
      .strict()
      .prefault({}),
    schedules: z
      .object({
        timezone: z.string().prefault('UTC'),
        backup: z.string().prefault('cron(0 2 * * ? *)'),
        staleness: z.string().prefault('rate(1 hour)'),
        drill: z.string().prefault('cron(0 5 1 * ? *)'),
        baseBackup: z.string().prefault('cron(0 3 ? * SUN *)'),
        pitrDrill: z.string().prefault('cron(0 6 1 * ? *)'),
        /** The WAL watch (check-wal): the archive's lag against `wal.rpo`. */
        walCheck: z.string().prefault('rate(5 minutes)'),
      })
      .strict()
      .prefault({}),
    /** The WAL archive: archive_command (pgbp wal-push), restore_command (pgbp wal-fetch), its watch. */
    wal: z
      .object({
        /** The cluster's name in the store (`~cluster/<cluster>/`): one archive per cluster. */
        cluster: z
          .string()
          .refine(isClusterName, 'a cluster name of letters, digits, _ . - (at most 63)')
          .prefault('main'),
        /** zstd level of archived WAL. */
        level: z.number().int().min(1).max(19).default(1),
        /** How many ready segments the pusher (wal-push's background half) stores at once (0: no pusher). */
        pushAhead: z.number().int().min(0).max(32).default(3),
        /** Segments the prefetcher keeps fetched ahead of recovery in the spool (0: none). */
        prefetch: z.number().int().min(0).max(64).default(8),
        /**
         * How many prefetches run at once; by default 1 when every store is a directory, 2 when one
         * is S3 (see defaultPrefetchConcurrency in lib/wal/prefetch.ts).
         */
        prefetchConcurrency: z.number().int().min(1).max(16).optional(),
        /** The recovery point objective: the archive may lag the server by at most this long. */
        rpo: duration.prefault('5m'),
        /** How long archived WAL is kept (besides what a kept base backup needs). */
        retention: duration.prefault('14d'),
      })
      .strict()
      .prefault({}),
    aws: z
      .object({
        /**
         * S3 Object Lock default retention on the bucket (on for prod unless `enabled: false`);
         * `days` defaults to the shortest daily retention, so a lock never outlives what GFS keeps.
         */
        objectLock: z
          .object({
            enabled: z.boolean().optional(),
            mode: z.enum(['GOVERNANCE', 'COMPLIANCE']).default('GOVERNANCE'),
            days: z.number().int().min(1).optional(),
          })
          .strict()
          .optional(),
        /** The task image, pinned by digest: `<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:<hex>`. */
        taskImage: z.string().optional(),
        /** The CPU architecture the image is built for and Fargate runs (ARM64 costs less). */
        taskArchitecture: z.enum(['ARM64', 'X86_64']).default('ARM64'),
        /** Where the Fargate tasks run: subnets (and security groups) that can reach the database. */
        network: z
          .object({
            subnets: z
              .array(
                z
                  .string()
                  .regex(
                    /^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$/,
                    'a subnet id such as subnet-0a1b2c3d4e5f60001',
                  ),
              )
              .min(1),
            securityGroups: z
              .array(
                z
                  .string()
                  .regex(
                    /^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$/,
                    'a security group id such as sg-0a1b2c3d4e5f60001',
                  ),
              )
              .min(1),
            assignPublicIp: z.boolean().default(false),
            /**
             * VPC endpoints the stack creates so tasks in private subnets without NAT reach AWS:
             * interface endpoints in the task subnets, the S3 gateway on these route tables.
             */
            endpoints: z
              .object({
                vpcId: z
                  .string()
                  .regex(/^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, 'a VPC id such as vpc-0a1b2c3d4e5f60001'),
                routeTableIds: z
                  .array(
                    z
                      .string()
                      .regex(
                        /^rtb-(?:[0-9a-f]{8}|[0-9a-f]{17})$/,
                        'a route table id such as rtb-0a1b2c3d4e5f60001',
                      ),
                  )
                  .min(1),
              })
              .strict()
              .optional(),
          })
          .strict()
          .optional(),
        taskCpu: z.number().int().default(1024),
        taskMemory: z.number().int().default(2048),
        taskEphemeralStorageGiB: z.number().int().min(21).max(200).default(50),
        logRetentionDays: z.number().int().default(30),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.store === undefined && c.stores === undefined) {
      ctx.addIssue({ code: 'custom', path: ['store'], message: 'expected a store URL (or stores.primary)' });
    }
    if (c.store !== undefined && c.stores !== undefined && c.store !== c.stores.primary.url) {
      ctx.addIssue({
        code: 'custom',
        path: ['store'],
        message: 'store and stores.primary name different stores: keep one of them',
      });
    }
    if (c.stores?.secondary && c.stores.secondary.url === c.stores.primary.url) {
      ctx.addIssue({
        code: 'custom',
        path: ['stores', 'secondary', 'url'],
        message: 'the secondary store must be another store than the primary',
      });
    }
  })
  // `store` is always the primary's URL, so what reads one store reads the primary; `stores`
  // always names the primary, and the secondary where there is one.
  .transform(({ store, stores, ...rest }) => ({
    ...rest,
    store: (store ?? stores?.primary.url) as string,
    stores: stores ?? ({ primary: { url: store as string } } as NonNullable<typeof stores>),
  }));
