import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import type { Config } from './config.js';

/**
 * The state machines of statemachines/ as data: loading an ASL file, filling its
 * `${Placeholders}`, and the adjustments a local run needs. serverless.yml fills the placeholders
 * on AWS (through deploy/stage-settings.ts, which takes its numbers from {@link machineSettings});
 * the local runner fills them from the same config here. The ASL files stay the only definition.
 */

/** The state machines: their ASL file, the logical id serverless.yml gives them, their deployed name's suffix. */
export const MACHINES = {
  backup: { file: 'statemachines/backup.asl.yml', logicalId: 'BackupStateMachine' },
  'restore-drill': { file: 'statemachines/restore-drill.asl.yml', logicalId: 'RestoreDrillStateMachine' },
  restore: { file: 'statemachines/restore.asl.yml', logicalId: 'RestoreStateMachine' },
  'base-backup': { file: 'statemachines/base-backup.asl.yml', logicalId: 'BaseBackupStateMachine' },
  'pitr-drill': { file: 'statemachines/pitr-drill.asl.yml', logicalId: 'PitrDrillStateMachine' },
} as const;

export type MachineName = keyof typeof MACHINES;
export const MACHINE_NAMES = Object.keys(MACHINES) as MachineName[];

/** serverless.yml's `service`; deployed machines are named `<service>-<stage>-<machine>`. */
export const SERVICE = 'pg-backup-pipeline';

/** The name serverless.yml gives a stage's state machine (`${self:service}-${sls:stage}-<machine>`). */
export function deployedMachineName(stage: string, machine: MachineName): string {
  return `${SERVICE}-${stage}-${machine}`;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type State = Record<string, Json> & { Type: string };
export interface Definition {
  StartAt: string;
  States: Record<string, State>;
  [key: string]: Json;
}

/**
 * The project's root: the nearest directory above this module holding statemachines/. Found
 * by walking up, so it holds from lib/ (tests, tsx) and from a bundle under dist/ alike.
 */
export function projectRoot(from: string = import.meta.dirname): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, MACHINES.backup.file))) return dir;
    const up = dirname(dir);
    if (up === dir)
      throw new Error(`no ${MACHINES.backup.file} above ${from}: is this the project's checkout?`);
    dir = up;
  }
}

/** The ASL of a machine as written, placeholders and all. */
export function loadDefinition(name: MachineName, root: string = projectRoot()): Definition {
  return parse(readFileSync(join(root, MACHINES[name].file), 'utf8')) as Definition;
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

/** Step Functions gives up on a silent task after this many missed heartbeats, and never sooner than this. */
const MISSED_HEARTBEATS = 5;
const MIN_HEARTBEAT_TIMEOUT_SECONDS = 300;

/**
 * Thaw polling per retrieval tier: S3 restores GLACIER in minutes (Expedited), hours (Standard,
 * up to 12 h from DEEP_ARCHIVE) or up to 48 h (Bulk). The restore machine polls this often, this
 * many times, then fails with ArchivedBackupError.
 */
export const THAW_POLLING: Readonly<Record<string, { readonly seconds: number; readonly rounds: number }>> = {
  Expedited: { seconds: 60, rounds: 30 },
  Standard: { seconds: 900, rounds: 60 },
  Bulk: { seconds: 1800, rounds: 120 },
};

function seconds(ms: number): number {
  return Math.max(1, Math.round(ms / 1000));
}

/** The settings a stage's config gives its state machines, wherever they run. */
export interface MachineSettings {
  /** How often the Fargate tasks heartbeat (PGBP_HEARTBEAT_SECONDS). */
  readonly heartbeatIntervalSeconds: number;
  /** HeartbeatSeconds of the task states: several missed heartbeats, never under five minutes. */
  readonly heartbeatTimeoutSeconds: number;
  /** TimeoutSeconds of the task states. */
  readonly taskTimeoutSeconds: number;
  /** Undefined for a retrieval tier the table above does not know (the config schema allows none). */
  readonly thawPolling: { readonly seconds: number; readonly rounds: number } | undefined;
  /** The placeholders that come from the config, as the strings DefinitionSubstitutions carry. */
  readonly substitutions: {
    readonly BackupMaxConcurrency: string;
    readonly DrillMaxConcurrency: string;
    readonly DumpHeartbeatSeconds: string;
    readonly DumpTimeoutSeconds: string;
    readonly RestoreHeartbeatSeconds: string;
    readonly RestoreTimeoutSeconds: string;
    readonly ThawPollSeconds: string;
    readonly ThawPollRounds: string;
    readonly ConfiguredDatabases: string;
    readonly PitrCluster: string;
    readonly BaseBackupHeartbeatSeconds: string;
    readonly BaseBackupTimeoutSeconds: string;
    readonly PitrDrillHeartbeatSeconds: string;
    readonly PitrDrillTimeoutSeconds: string;
  };
}

/** The state machine settings of a config: one derivation for serverless.yml and the local runner. */
export function machineSettings(config: Config): MachineSettings {
  const heartbeatIntervalSeconds = seconds(config.dump.heartbeat);
  const heartbeatTimeoutSeconds = Math.max(
    MISSED_HEARTBEATS * heartbeatIntervalSeconds,
    MIN_HEARTBEAT_TIMEOUT_SECONDS,
  );
  const taskTimeoutSeconds = seconds(config.dump.timeout);
  const thawPolling = THAW_POLLING[config.defaults.restore.thawTier];
  return {
    heartbeatIntervalSeconds,
    heartbeatTimeoutSeconds,
    taskTimeoutSeconds,
    thawPolling,
    substitutions: {
      BackupMaxConcurrency: String(config.backup.maxConcurrency),
      DrillMaxConcurrency: String(config.backup.maxConcurrency),
      DumpHeartbeatSeconds: String(heartbeatTimeoutSeconds),
      DumpTimeoutSeconds: String(taskTimeoutSeconds),
      // A restore heartbeats like a dump; the dump's limit is the drill's too (no separate key yet).
      RestoreHeartbeatSeconds: String(heartbeatTimeoutSeconds),
      RestoreTimeoutSeconds: String(taskTimeoutSeconds),
      ThawPollSeconds: String(thawPolling?.seconds ?? THAW_POLLING.Standard?.seconds),
      ThawPollRounds: String(thawPolling?.rounds ?? THAW_POLLING.Standard?.rounds),
      ConfiguredDatabases: config.databases.map((d) => d.name).join(','),
      PitrCluster: config.wal?.cluster ?? 'main',
      BaseBackupHeartbeatSeconds: String(heartbeatTimeoutSeconds),
      BaseBackupTimeoutSeconds: String(seconds(config.basebackup.timeout)),
      PitrDrillHeartbeatSeconds: String(heartbeatTimeoutSeconds),
      // Fetching, verifying and replaying, then the checks: the recovery's own limit and an hour.
      PitrDrillTimeoutSeconds: String(seconds(config.pitr.recoveryTimeout) + 3600),
    },
  };
}

/** The Lambda function a `${<Name>FunctionArn}` placeholder stands for: its key in serverless.yml. */
export function functionKeyOf(resource: string): string | undefined {
  const m = /^\$\{([A-Z][A-Za-z0-9]*)FunctionArn\}$/.exec(resource);
  return m?.[1] ? `${m[1].charAt(0).toLowerCase()}${m[1].slice(1)}` : undefined;
}

/** The account in local ARNs: no AWS account is involved. */
const LOCAL_ACCOUNT = '000000000000';

/**
 * Every placeholder filled for a run on this machine: the config's settings as on AWS, and
 * ARNs of the right shape for the resources, which local runs never call (each Task state is
 * bound to local code by the runner).
 */
export function localSubstitutions(config: Config): Record<string, string> {
  const region = config.region;
  const name = `${SERVICE}-${config.stage}`;
  const fn = (key: string) => `arn:aws:lambda:${region}:${LOCAL_ACCOUNT}:function:${name}-${key}`;
  return {
    ...machineSettings(config).substitutions,
    EcsClusterArn: `arn:aws:ecs:${region}:${LOCAL_ACCOUNT}:cluster/${name}`,
    DumpTaskDefinitionArn: `arn:aws:ecs:${region}:${LOCAL_ACCOUNT}:task-definition/${name}-dump:1`,
    RestoreTaskDefinitionArn: `arn:aws:ecs:${region}:${LOCAL_ACCOUNT}:task-definition/${name}-restore:1`,
    BaseBackupTaskDefinitionArn: `arn:aws:ecs:${region}:${LOCAL_ACCOUNT}:task-definition/${name}-base-backup:1`,
    PitrDrillTaskDefinitionArn: `arn:aws:ecs:${region}:${LOCAL_ACCOUNT}:task-definition/${name}-pitr-drill:1`,
    TaskSubnets: config.aws.network?.subnets.join(',') ?? 'subnet-local',
    TaskSecurityGroups: config.aws.network?.securityGroups.join(',') ?? 'sg-local',
    TaskAssignPublicIp: 'DISABLED',
    CheckSizeFunctionArn: fn('checkSize'),
    ApplyRetentionFunctionArn: fn('applyRetention'),
    NotifyFunctionArn: fn('notify'),
    PrepareRestoreFunctionArn: fn('prepareRestore'),
    ThawBackupFunctionArn: fn('thawBackup'),
  };
}

/**
 * A machine's definition ready for aws-local-stepfunctions: placeholders filled from the config
 * (`overrides` win), and the task timeout fixed to the config's.
 */
export function localDefinition(
  name: MachineName,
  config: Config,
  overrides: Readonly<Record<string, string>> = {},
  root: string = projectRoot(),
): Definition {
  const values = { ...localSubstitutions(config), ...overrides };
  return forLocalRun(substitute(loadDefinition(name, root), values), Number(values.DumpTimeoutSeconds));
}
