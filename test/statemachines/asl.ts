import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { parse } from 'yaml';
import {
  type Definition,
  loadDefinition as loadFromRoot,
  MACHINES,
  type MachineName,
  projectRoot,
  type State,
} from '../../lib/state-machines.js';

// One source of truth: the loading, filling and local adjustments live in lib/state-machines.ts.
export {
  allStates,
  type Definition,
  forLocalRun,
  type Json,
  MACHINE_NAMES,
  MACHINES,
  type MachineName,
  placeholders,
  polyfillWithResolvers,
  type State,
  type StateEntry,
  substitute,
} from '../../lib/state-machines.js';

/**
 * Fixed values of the right shape for every placeholder: the flows tests' fixture. A run on this
 * machine fills them from its config instead (localSubstitutions in lib/state-machines.ts).
 */
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
  PitrCluster: 'main',
  BaseBackupHeartbeatSeconds: '300',
  BaseBackupTimeoutSeconds: '43200',
  PitrDrillHeartbeatSeconds: '300',
  PitrDrillTimeoutSeconds: '10800',
  BaseBackupTaskDefinitionArn: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/pgbp-base-backup:1',
  PitrDrillTaskDefinitionArn: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/pgbp-pitr-drill:1',
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

export const ROOT = projectRoot();

/** The ASL of a machine as written, placeholders and all. */
export function loadDefinition(name: MachineName): Definition {
  return loadFromRoot(name, ROOT);
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
