import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { errorNames } from '../../lib/domain/errors.js';
import { localDefinition, localSubstitutions, machineSettings } from '../../lib/state-machines.js';
import {
  allStates,
  type Definition,
  isNotifyState,
  LOCAL_SUBSTITUTIONS,
  loadDefinition,
  loadServerlessYml,
  localMachine,
  MACHINE_NAMES,
  type MachineName,
  placeholders,
  ROOT,
  reaches,
  type State,
  substitute,
  substitutionsInServerlessYml,
} from './asl.js';

const require = createRequire(import.meta.url);
const aslValidator = require('asl-validator') as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };

/** The predefined errors of the States language and Step Functions. */
const STATES_ERRORS = new Set([
  'States.ALL',
  'States.HeartbeatTimeout',
  'States.Timeout',
  'States.TaskFailed',
  'States.Permissions',
  'States.ResultPathMatchFailure',
  'States.ParameterPathFailure',
  'States.BranchFailed',
  'States.NoChoiceMatched',
  'States.IntrinsicFailure',
  'States.ExceedToleratedFailureThreshold',
  'States.ItemReaderFailed',
  'States.ResultWriterFailed',
  'States.QueryEvaluationError',
  'States.Runtime',
  'States.DataLimitExceeded',
]);

/** Errors raised by the service integrations this project uses. */
const SERVICE_ERROR = /^(ECS|Lambda|SFN)\.[A-Z][A-Za-z]+$/;

function tasks(definition: Definition): { name: string; state: State; scope: Record<string, State> }[] {
  return allStates(definition).filter((e) => e.state.Type === 'Task');
}

function errorsNamed(state: State): string[] {
  const clauses = [
    ...((state.Retry as { ErrorEquals: string[] }[]) ?? []),
    ...((state.Catch as { ErrorEquals: string[] }[]) ?? []),
  ];
  return clauses.flatMap((c) => c.ErrorEquals);
}

function jsonataMarks(value: unknown, path = '$'): string[] {
  if (typeof value === 'string') return value.includes('{%') ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => jsonataMarks(v, `${path}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => {
      const here = `${path}.${k}`;
      const own =
        (k === 'QueryLanguage' && v !== 'JSONPath') || ['Arguments', 'Output', 'Assign'].includes(k)
          ? [here]
          : [];
      return [...own, ...jsonataMarks(v, here)];
    });
  }
  return [];
}

describe.each(MACHINE_NAMES)('statemachines/%s', (name: MachineName) => {
  const definition = loadDefinition(name);

  it('is valid Amazon States Language for asl-validator', () => {
    const result = aslValidator(structuredClone(definition));
    expect(result.isValid, result.isValid ? '' : result.errorsText('\n')).toBe(true);
  });

  it('is accepted by aws-local-stepfunctions once its placeholders are filled', () => {
    expect(() => localMachine(substitute(definition, LOCAL_SUBSTITUTIONS))).not.toThrow();
  });

  it.each(['local', 'prod'])(
    'runs locally with every placeholder filled from config/%s.yml and a fixed task timeout',
    (stage) => {
      const config = loadConfig(`${ROOT}/config/${stage}.yml`);
      expect(Object.keys(localSubstitutions(config))).toEqual(
        expect.arrayContaining([...placeholders(definition)]),
      );
      const local = localDefinition(name, config);
      expect(() => localMachine(local)).not.toThrow();
      const fargate = allStates(local).filter(
        (e) => e.state.Resource === 'arn:aws:states:::ecs:runTask.waitForTaskToken',
      );
      for (const { state } of fargate) {
        expect(state.TimeoutSeconds).toBe(machineSettings(config).taskTimeoutSeconds);
        expect(state.TimeoutSecondsPath).toBeUndefined();
      }
    },
  );

  it('uses JSONPath only: nothing of JSONata, which aws-local-stepfunctions would silently ignore', () => {
    expect(jsonataMarks(definition)).toEqual([]);
  });

  it('has a substitution in serverless.yml for every placeholder, and none left unused', () => {
    const used = [...placeholders(definition)].sort();
    const given = Object.keys(substitutionsInServerlessYml(name)).sort();
    expect(used.length).toBeGreaterThan(0);
    expect(given).toEqual(used);
  });

  it('gives every Task state a Catch of every error', () => {
    const missing = tasks(definition)
      .filter(({ state }) => {
        const catches = (state.Catch as { ErrorEquals: string[] }[] | undefined) ?? [];
        return !catches.some((c) => c.ErrorEquals.includes('States.ALL'));
      })
      .map((t) => t.name);
    expect(missing).toEqual([]);
  });

  it('routes every Catch of a working Task state to a notify state', () => {
    const unalerted = tasks(definition)
      .filter(({ state }) => !isNotifyState(state))
      .flatMap(({ name: taskName, state, scope }) =>
        ((state.Catch as { ErrorEquals: string[]; Next: string }[]) ?? [])
          .filter((c) => !reaches(scope, c.Next, isNotifyState))
          .map((c) => `${taskName} → ${c.Next} (${c.ErrorEquals.join(', ')})`),
      );
    expect(unalerted).toEqual([]);
  });

  it('alerts when a Map fails as a whole', () => {
    for (const { state, scope } of allStates(definition).filter((e) => e.state.Type === 'Map')) {
      const catches = (state.Catch as { ErrorEquals: string[]; Next: string }[] | undefined) ?? [];
      expect(
        catches.some((c) => c.ErrorEquals.includes('States.ALL') && reaches(scope, c.Next, isNotifyState)),
      ).toBe(true);
    }
  });

  it('names only typed errors of lib/domain/errors.ts or States, ECS and Lambda errors in Retry and Catch', () => {
    const unknown = allStates(definition)
      .flatMap(({ state }) => errorsNamed(state))
      .filter((e) => !errorNames.includes(e) && !STATES_ERRORS.has(e) && !SERVICE_ERROR.test(e));
    expect(unknown).toEqual([]);
  });

  it('writes retriers and catchers with only the fields Step Functions accepts in them', () => {
    const retrier = new Set([
      'ErrorEquals',
      'IntervalSeconds',
      'MaxAttempts',
      'BackoffRate',
      'MaxDelaySeconds',
      'JitterStrategy',
    ]);
    const catcher = new Set(['ErrorEquals', 'Next', 'ResultPath']);
    const extra = allStates(definition).flatMap(({ name: stateName, state }) => [
      ...((state.Retry as Record<string, unknown>[] | undefined) ?? []).flatMap((r) =>
        Object.keys(r)
          .filter((k) => !retrier.has(k))
          .map((k) => `${stateName} Retry ${k}`),
      ),
      ...((state.Catch as Record<string, unknown>[] | undefined) ?? []).flatMap((c) =>
        Object.keys(c)
          .filter((k) => !catcher.has(k))
          .map((k) => `${stateName} Catch ${k}`),
      ),
    ]);
    expect(extra).toEqual([]);
  });

  it('bounds every Retry', () => {
    for (const { state } of allStates(definition)) {
      for (const retry of (state.Retry as { MaxAttempts?: number }[] | undefined) ?? []) {
        expect(retry.MaxAttempts).toBeGreaterThan(0);
        expect(retry.MaxAttempts).toBeLessThanOrEqual(5);
      }
    }
  });

  it('runs its Fargate tasks waiting for the task token, with a timeout and heartbeats', () => {
    const fargate = tasks(definition).filter((t) =>
      String(t.state.Resource).startsWith('arn:aws:states:::ecs:'),
    );
    for (const { state } of fargate) {
      expect(state.Resource).toBe('arn:aws:states:::ecs:runTask.waitForTaskToken');
      expect(state.TimeoutSecondsPath ?? state.TimeoutSeconds).toBeDefined();
      expect(state.HeartbeatSecondsPath ?? state.HeartbeatSeconds).toBeDefined();
      const env = JSON.stringify((state.Parameters as { Overrides: unknown }).Overrides);
      expect(env).toContain('"Name":"TASK_TOKEN","Value.$":"$$.Task.Token"');
      const retried = errorsNamed({ ...state, Catch: [] } as State);
      expect(retried).toEqual(expect.arrayContaining(['ECS.AmazonECSException', 'ECS.ThrottlingException']));
    }
  });
});

describe('the state names the local runner binds', () => {
  it.each([
    ['backup', ['Dump', 'CheckSize', 'NotifyWarning', 'NotifyFailure', 'ApplyRetention']],
    ['restore-drill', ['VerifyRestore', 'NotifyFailure']],
    ['restore', ['Prepare', 'Thaw', 'Restore', 'NotifyRestored', 'NotifyRestoreFailure']],
  ] as const)('%s has Task states %j', (name, expected) => {
    const names = tasks(loadDefinition(name)).map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining([...expected]));
  });
});

describe('the Fargate command', () => {
  it('is the same in the state machines and in the task definitions', () => {
    const yml = loadServerlessYml();
    const resources = (
      yml.resources as { Resources?: Record<string, { Properties?: Record<string, unknown> }> }[]
    )
      .map((r) => r.Resources ?? {})
      .reduce((a, b) => Object.assign(a, b), {});
    const commandOf = (logicalId: string) =>
      (resources[logicalId]?.Properties?.ContainerDefinitions as { Command: string[] }[] | undefined)?.[0]
        ?.Command;
    const asl = (name: MachineName) =>
      tasks(loadDefinition(name))
        .filter((t) => t.state.Resource === 'arn:aws:states:::ecs:runTask.waitForTaskToken')
        .map(
          (t) =>
            (t.state.Parameters as { Overrides: { ContainerOverrides: { Command: string[] }[] } }).Overrides,
        )
        .map((o) => o.ContainerOverrides[0]?.Command);
    expect(asl('backup')).toEqual([commandOf('DumpTaskDefinition')]);
    expect(asl('restore-drill')).toEqual([commandOf('RestoreTaskDefinition')]);
    expect(asl('restore')).toEqual([commandOf('RestoreTaskDefinition')]);
  });
});
