import type { RestoreReport } from './verify-report.js';

/**
 * Typed errors. Their `name` is the contract with Step Functions: ASL Retry and Catch
 * match on it, so a name here is never renamed without the state machines.
 */
export abstract class PipelineError extends Error {
  abstract override readonly name: string;
}

function typed<N extends string>(name: N) {
  return class extends PipelineError {
    override readonly name: N = name;
    static readonly errorName: N = name;
  };
}

/** pg_dump failed, was killed, or its output could not be stored. */
export class DumpFailedError extends typed('DumpFailedError') {}
/** The client tools are older than the server they would dump or restore. */
export class VersionMismatchError extends typed('VersionMismatchError') {}
/** A stored backup does not match its manifest (digest, size, truncation). */
export class CorruptBackupError extends typed('CorruptBackupError') {}
/** The backup sits in an archive storage class and must be thawed first. */
export class ArchivedBackupError extends typed('ArchivedBackupError') {}
/** A restore request is malformed or would cause harm. */
export class InvalidRestoreRequestError extends typed('InvalidRestoreRequestError') {}
/** No backup matches the request. */
export class BackupNotFoundError extends typed('BackupNotFoundError') {}
/** A backup's size is outside its expected range. */
export class SizeOutOfRangeError extends typed('SizeOutOfRangeError') {}
/**
 * A restored backup failed a built-in or configured check. Thrown by a restore that ran to its
 * end, it carries the report that says which (stored first, in verify mode).
 */
export class RestoreCheckFailedError extends typed('RestoreCheckFailedError') {
  readonly report?: RestoreReport;
  constructor(message: string, options?: ErrorOptions & { readonly report?: RestoreReport }) {
    super(message, options);
    if (options?.report) this.report = options.report;
  }
}
/** pg_restore itself failed. */
export class RestoreFailedError extends typed('RestoreFailedError') {}
/** Writing would replace an existing object; nothing was written. */
export class ObjectExistsError extends typed('ObjectExistsError') {}
/** A configuration file is missing or invalid. */
export class ConfigError extends typed('ConfigError') {}
/** An event given to a handler is malformed. */
export class InvalidEventError extends typed('InvalidEventError') {}
/** Retention refused to delete because the newest good backup is stale. */
export class RetentionBlockedError extends typed('RetentionBlockedError') {}
/** An alert could not be delivered (the caller retries or dead-letters it). */
export class AlertDeliveryError extends typed('AlertDeliveryError') {}
/** A WAL file is already archived with different contents; nothing was overwritten. */
export class WalConflictError extends typed('WalConflictError') {}
/** A WAL file belongs to another cluster (system identifier) than the archive's. */
export class ForeignClusterError extends typed('ForeignClusterError') {}
/** An archived WAL file is damaged (digest, compression) or ambiguous; never handed to PostgreSQL. */
export class CorruptWalError extends typed('CorruptWalError') {}
/** The WAL archive cannot be read or written (after retries), or is not there at all. */
export class WalArchiveUnavailableError extends typed('WalArchiveUnavailableError') {}
/** A name or file given to wal-push or wal-fetch is not one of PostgreSQL's WAL files. */
export class InvalidWalFileError extends typed('InvalidWalFileError') {}
/** pg_basebackup failed, its output could not be stored, or its WAL did not reach the archive. */
export class BaseBackupFailedError extends typed('BaseBackupFailedError') {}
/** A recovery was refused before anything was written (target, archive gap, data directory). */
export class RecoveryRefusedError extends typed('RecoveryRefusedError') {}
/** A recovery started but did not reach its target, or its server did not come up. */
export class RecoveryFailedError extends typed('RecoveryFailedError') {}
/**
 * The key that encrypts or decrypts the stage's objects cannot be used: a KMS key missing,
 * disabled or not permitted, a key file missing or readable by others, or an object encrypted
 * under another key. The message names the key, never key material.
 */
export class KeyUnavailableError extends typed('KeyUnavailableError') {}

/**
 * The run was stopped by a signal (SIGTERM, SIGINT, SIGHUP): its processes were stopped, what
 * it had begun was removed, and nothing was written after the signal.
 */
export class InterruptedError extends typed('InterruptedError') {}

/** Every typed error name, for checks that ASL only names errors that exist. */
export const errorNames: readonly string[] = [
  DumpFailedError,
  VersionMismatchError,
  CorruptBackupError,
  ArchivedBackupError,
  InvalidRestoreRequestError,
  BackupNotFoundError,
  SizeOutOfRangeError,
  RestoreCheckFailedError,
  RestoreFailedError,
  ObjectExistsError,
  ConfigError,
  InvalidEventError,
  RetentionBlockedError,
  AlertDeliveryError,
  WalConflictError,
  ForeignClusterError,
  CorruptWalError,
  WalArchiveUnavailableError,
  InvalidWalFileError,
  InterruptedError,
  BaseBackupFailedError,
  RecoveryRefusedError,
  RecoveryFailedError,
  KeyUnavailableError,
].map((e) => e.errorName);
