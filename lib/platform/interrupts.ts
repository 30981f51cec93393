import { constants } from 'node:os';
import { InterruptedError } from '../domain/errors.js';
import { stopAllChildren } from './processes.js';

/** What `timeout`, systemd, a supervisor, a terminal and Fargate's StopTask send. */
export const INTERRUPTING_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** 128 + the signal's number: how a shell reports a process that a signal ended. */
export function exitCodeFor(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** Throws the interruption (an {@link InterruptedError}) once `signal` is aborted. */
export function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw interruptionOf(signal);
}

/** The error an aborted signal stands for. */
export function interruptionOf(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new InterruptedError('interrupted');
}

export interface Interrupts {
  /** Aborted at the first signal, with an {@link InterruptedError} as its reason. */
  readonly signal: AbortSignal;
  /** The signal that interrupted the run, once one came. */
  received(): NodeJS.Signals | undefined;
  /** Removes the handlers. */
  dispose(): void;
}

export interface InterruptOptions {
  /** How long cleanup may take after the signal before the process exits anyway. */
  readonly cleanupMs?: number;
  /** Called once, at the first signal. */
  readonly onSignal?: (signal: NodeJS.Signals) => void;
}

/**
 * Handles SIGTERM, SIGINT and SIGHUP for a process that runs children: at the first, every
 * child still running is stopped (its whole process group) and `signal` is aborted, so the
 * run unwinds through its own cleanup (abort the upload, remove the temporary file, drop the
 * scratch database) and writes nothing more. A second signal, or cleanup that takes longer
 * than `cleanupMs`, ends the process at once with 128 + the signal; the children then get
 * SIGKILL as it exits.
 */
export function listenForInterrupts(options: InterruptOptions = {}): Interrupts {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (received) {
      process.exit(exitCodeFor(received));
    }
    received = signal;
    options.onSignal?.(signal);
    controller.abort(new InterruptedError(`interrupted by ${signal}`));
    void stopAllChildren();
    watchdog = setTimeout(() => process.exit(exitCodeFor(signal)), options.cleanupMs ?? 60_000);
    watchdog.unref();
  };
  for (const s of INTERRUPTING_SIGNALS) process.on(s, handler);
  return {
    signal: controller.signal,
    received: () => received,
    dispose() {
      for (const s of INTERRUPTING_SIGNALS) process.off(s, handler);
      if (watchdog) clearTimeout(watchdog);
    },
  };
}
