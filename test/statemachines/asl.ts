import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { parse } from 'yaml';

/** The state machines: their ASL file and the logical id serverless.yml gives them. */
export const MACHINES = {
  backup: { file: 'statemachines/backup.asl.yml', logicalId: 'BackupStateMachine' },
  'restore-drill': { file: 'statemachines/restore-drill.asl.yml', logicalId: 'RestoreDrillStateMachine' },
  restore: { file: 'statemachines/restore.asl.yml', logicalId: 'RestoreStateMachine' },
} as const;

/** Values of the right shape for every placeholder, so the definitions can be run here. */
export const LOCAL_SUBSTITUTIONS: Record<string, string> = {
  BackupMaxConcurrency: '2',
  DrillMaxConcurrency: '2',
  DumpHeartbeatSeconds: '300',
  DumpTimeoutSeconds: '3600',
  RestoreHeartbeatSeconds: '300',
  RestoreTimeoutSeconds: '3600',
  ThawPollSeconds: '900',
  ThawPollRounds: '3',
  ConfiguredDatabases: 'alpha,beta',
  EcsClusterArn: 'arn:aws:ecs:eu-west-1:123456789012:cluster/pgbp',
  DumpTaskDefinitionArn: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/pgbp-dump:1',
  RestoreTaskDefinitionArn: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/pgbp-restore:1',
  TaskSubnets: 'subnet-0001,subnet-0002',
  TaskSecurityGroups: 'sg-0001',
  TaskAssignPublicIp: 'DISABLED',
  CheckSizeFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:checkSize',
  ApplyRetentionFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:applyRetention',
  NotifyFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:notify',
  PrepareRestoreFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:prepareRestore',
  ThawBackupFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:thawBackup',
};

export type MachineName = keyof typeof MACHINES;
export const MACHINE_NAMES = Object.keys(MACHINES) as MachineName[];

export const ROOT = resolve(import.meta.dirname, '../..');

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type State = Record<string, Json> & { Type: string };
export interface Definition {
  StartAt: string;
  States: Record<string, State>;
  [key: string]: Json;
}

/** The ASL of a machine as written, placeholders and all. */
export function loadDefinition(name: MachineName): Definition {
  return parse(readFileSync(resolve(ROOT, MACHINES[name].file), 'utf8')) as Definition;
}

const PLACEHOLDER = /\$\{([A-Za-z][A-Za-z0-9]*)\}/g;

function mapStrings(value: Json, fn: (s: string) => string): Json {
  if (typeof value === 'string') return fn(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, fn));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, fn)]));
  }
  return value;
}

/** Every `${Name}` used anywhere in a definition. */
export function placeholders(definition: Definition): Set<string> {
  const found = new Set<string>();
  mapStrings(definition as unknown as Json, (s) => {
    for (const m of s.matchAll(PLACEHOLDER)) found.add(m[1] as string);
    return s;
  });
  return found;
}

/** The definition with its placeholders filled; a placeholder without a value is an error. */
export function substitute(definition: Definition, values: Readonly<Record<string, string>>): Definition {
  return mapStrings(definition as unknown as Json, (s) =>
    s.replace(PLACEHOLDER, (_, name: string) => {
      const value = values[name];
      if (value === undefined) throw new Error(`no value for the placeholder \${${name}}`);
      return value;
    }),
  ) as unknown as Definition;
}

export interface StateEntry {
  readonly name: string;
  readonly state: State;
  /** The States object the state lives in (its transitions stay inside it). */
  readonly scope: Record<string, State>;
}

/** Every state, nested ones (Map item processors, Parallel branches) included. */
export function allStates(definition: { States: Record<string, State> }): StateEntry[] {
  const out: StateEntry[] = [];
  for (const [name, state] of Object.entries(definition.States)) {
    out.push({ name, state, scope: definition.States });
    const nested = [state.ItemProcessor, state.Iterator, ...((state.Branches as Json[] | undefined) ?? [])];
    for (const sub of nested) {
      if (sub && typeof sub === 'object' && !Array.isArray(sub) && 'States' in sub) {
        out.push(...allStates(sub as unknown as { States: Record<string, State> }));
      }
    }
  }
  return out;
}

/** The states a state can go to next: Next, Default, Choices, Catch. */
export function successors(state: State): string[] {
  const next: string[] = [];
  if (typeof state.Next === 'string') next.push(state.Next);
  if (typeof state.Default === 'string') next.push(state.Default);
  for (const c of (state.Choices as { Next?: string }[] | undefined) ?? []) if (c.Next) next.push(c.Next);
  for (const c of (state.Catch as { Next?: string }[] | undefined) ?? []) if (c.Next) next.push(c.Next);
  return next;
}

/** Whether some state satisfying `target` can be reached from `from` (itself included). */
export function reaches(
  scope: Record<string, State>,
  from: string,
  target: (state: State) => boolean,
): boolean {
  const seen = new Set<string>();
  const queue = [from];
  while (queue.length > 0) {
    const name = queue.shift() as string;
    if (seen.has(name)) continue;
    seen.add(name);
    const state = scope[name];
    if (!state) continue;
    if (target(state)) return true;
    queue.push(...successors(state));
  }
  return false;
}

/** The Resource of the states that publish alerts: the notify function's placeholder. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an ASL placeholder, not a template
export const NOTIFY_RESOURCE = '${NotifyFunctionArn}';

/** A Task state that publishes an alert. */
export function isNotifyState(state: State): boolean {
  return state.Type === 'Task' && state.Resource === NOTIFY_RESOURCE;
}

/**
 * aws-local-stepfunctions reads TimeoutSecondsPath from the state's effective parameters, where
 * Step Functions reads it from the state input; with the ECS parameters in between the path is
 * not there. Local runs take a fixed timeout instead (and heartbeats are not supported locally).
 */
export function forLocalRun(definition: Definition, timeoutSeconds: number): Definition {
  const copy = structuredClone(definition);
  for (const { state } of allStates(copy)) {
    if (state.Type !== 'Task') continue;
    if ('TimeoutSecondsPath' in state) {
      delete state.TimeoutSecondsPath;
      state.TimeoutSeconds = timeoutSeconds;
    }
    delete state.HeartbeatSecondsPath;
  }
  return copy;
}

/** aws-local-stepfunctions needs Promise.withResolvers, which Node 20 lacks. */
export function polyfillWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: () => unknown };
  P.withResolvers ??= () => {
    let resolvePromise!: (value: unknown) => void;
    let rejectPromise!: (reason?: unknown) => void;
    const promise = new Promise((res, rej) => {
      resolvePromise = res;
      rejectPromise = rej;
    });
    return { promise, resolve: resolvePromise, reject: rejectPromise };
  };
}

/** serverless.yml as data; CloudFormation tags (!Ref, !GetAtt, …) stay as plain values. */
export function loadServerlessYml(): Record<string, unknown> {
  return parse(readFileSync(resolve(ROOT, 'serverless.yml'), 'utf8'), { logLevel: 'silent' }) as Record<
    string,
    unknown
  >;
}

/** The DefinitionSubstitutions serverless.yml gives a machine. */
export function substitutionsInServerlessYml(name: MachineName): Record<string, unknown> {
  const yml = loadServerlessYml();
  const parts = (Array.isArray(yml.resources) ? yml.resources : [yml.resources]) as Record<string, unknown>[];
  const extensions =
    parts.map((p) => p?.extensions as Record<string, unknown> | undefined).find(Boolean) ?? {};
  const machine = extensions[MACHINES[name].logicalId] as
    | { Properties?: { DefinitionSubstitutions?: Record<string, unknown> } }
    | undefined;
  return machine?.Properties?.DefinitionSubstitutions ?? {};
}

/** An aws-local-stepfunctions machine of a definition (whose validation runs here). */
export function localMachine(definition: Definition): StateMachine {
  return new StateMachine(definition as unknown as StateMachineDefinition);
}
