import { redact } from '../domain/redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger that adds these keys to every line (database, backupId, executionArn). */
  child(keys: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly write?: (line: string) => void;
  /** Known secret values to mask wherever they appear. */
  readonly secrets?: readonly string[];
}

/**
 * One structured JSON logger per process. Lines go to stderr so stdout stays for results.
 * Every line passes through {@link redact}.
 */
export function createLogger(keys: Record<string, unknown> = {}, options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const emit = (l: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[l] < ORDER[level]) return;
    const line = JSON.stringify({ level: l, time: new Date().toISOString(), message, ...keys, ...fields });
    write(redact(line, options.secrets ?? []));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (more) => createLogger({ ...keys, ...more }, options),
  };
}

/** A logger that writes nothing: for tests and quiet CLI runs. */
export const silentLogger: Logger = createLogger({}, { write: () => {} });
