import { redact } from '../lib/domain/redact.js';
import type { Json, MachineName } from '../lib/state-machines.js';
import { type CliDeps, out } from './context.js';

/**
 * What the CLI shows of an execution, wherever it runs: in-process (cli/local-runner.ts) or on
 * Step Functions (cli/aws-runner.ts, from the execution's history).
 */

/** One step of an execution, as it happens. */
export interface StepEvent {
  readonly kind: 'entered' | 'succeeded' | 'failed' | 'retried' | 'caught';
  readonly state: string;
  /** The state's type: Task, Map, Pass, Choice, Wait, Fail, Succeed. */
  readonly type: string;
  /** Set for states inside a Map iteration. */
  readonly nested: boolean;
  /** The database the state works on, when its input names one. */
  readonly database?: string;
  readonly error?: ExecutionError;
  /** How long the state ran (succeeded Task and Map states). */
  readonly seconds?: number;
  /** Where a caught error went. */
  readonly next?: string;
}

export interface ExecutionError {
  readonly name: string;
  readonly cause: string;
}

export interface ExecutionResult {
  readonly machine: MachineName;
  /** The execution ARN (a local one for local runs). */
  readonly executionId: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output?: Json;
  readonly error?: ExecutionError;
  /**
   * The output of each top-level state as it left it: the Map's results are here even when the
   * execution failed afterwards, which its own output would not show.
   */
  readonly stateOutputs: Readonly<Record<string, Json>>;
  readonly seconds: number;
}

/** The database a state's input names (`database`, or a restore's `prepared.request.database`). */
export function databaseOf(input: unknown): string | undefined {
  if (!input || typeof input !== 'object') return undefined;
  const o = input as Record<string, unknown>;
  if (typeof o.database === 'string') return o.database;
  const prepared = o.prepared as { request?: { database?: unknown } } | undefined;
  return typeof prepared?.request?.database === 'string' ? prepared.request.database : undefined;
}

function oneLine(text: string, max = 300): string {
  const line = text.replace(/\s*\n\s*/g, ' | ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 3)}...`;
}

/** One readable line per step: `  Dump [alpha] succeeded in 1.2 s`. */
export function formatStep(e: StepEvent, secrets: readonly (string | undefined)[] = []): string | undefined {
  const where = `${e.nested ? '    ' : '  '}${e.state}${e.database ? ` [${e.database}]` : ''}`;
  switch (e.kind) {
    case 'entered':
      return e.type === 'Task' || e.type === 'Map' || e.type === 'Wait' ? `${where} started` : where;
    case 'succeeded':
      return e.type === 'Task' || e.type === 'Map'
        ? `${where} succeeded${e.seconds !== undefined ? ` in ${e.seconds.toFixed(1)} s` : ''}`
        : undefined;
    case 'failed':
      return `${where} failed: ${e.error?.name ?? 'Error'}${e.error?.cause ? `: ${oneLine(redact(e.error.cause, secrets))}` : ''}`;
    case 'retried':
      return `${where} retrying`;
    case 'caught':
      return `${where} caught${e.next ? ` -> ${e.next}` : ''}`;
  }
}

/** Prints a step on stdout (nothing with --json). */
export function stepPrinter(deps: CliDeps, json: boolean | undefined): (e: StepEvent) => void {
  const secrets = [deps.env.PGPASSWORD];
  return (e) => {
    if (json) return;
    const line = formatStep(e, secrets);
    if (line !== undefined) out(deps, line);
  };
}

/** The last line: how the execution ended. */
export function formatEnd(result: ExecutionResult, secrets: readonly (string | undefined)[] = []): string {
  const took = `${result.seconds.toFixed(1)} s`;
  if (result.status === 'SUCCEEDED') return `${result.machine} succeeded in ${took} (${result.executionId})`;
  const error = result.error;
  return `${result.machine} FAILED after ${took}: ${error?.name ?? 'Error'}${error?.cause ? `: ${oneLine(redact(error.cause, secrets))}` : ''} (${result.executionId})`;
}

/** The JSON a command prints with --json: how the execution ended, and what the command makes of it. */
export function executionJson(
  result: ExecutionResult,
  summary: unknown,
  secrets: readonly (string | undefined)[] = [],
): string {
  const error = result.error ? { name: result.error.name, cause: redact(result.error.cause, secrets) } : null;
  return JSON.stringify({
    machine: result.machine,
    executionId: result.executionId,
    status: result.status,
    seconds: result.seconds,
    error,
    summary: summary ?? null,
  });
}
