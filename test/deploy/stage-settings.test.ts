import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { DEPLOY_STAGES, ecrRepositoryArn, stageSettings } from '../../deploy/stage-settings.js';

const ROOT = resolve(import.meta.dirname, '../..');

let scratch: string | undefined;
afterEach(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
  scratch = undefined;
});

/** The parts of a stage config these tests change. */
interface ConfigYaml {
  store: string;
  kmsKeyId?: string;
  connection: { passwordSecretId?: string };
  defaults: { restore?: Record<string, unknown> };
  databases: Record<string, unknown>[];
  aws: { network?: unknown; taskImage?: string; logRetentionDays: number; taskMemory: number };
}

/** A project root whose config/prod.yml is the real one with `change` applied. */
async function rootWith(change: (config: ConfigYaml) => void): Promise<string> {
  scratch = await mkdtemp(join(tmpdir(), 'pgbp-settings-'));
  const config = parse(await readFile(join(ROOT, 'config/prod.yml'), 'utf8')) as ConfigYaml;
  change(config);
  await mkdir(join(scratch, 'config'));
  await writeFile(join(scratch, 'config/prod.yml'), stringify(config));
  return scratch;
}

describe('stage settings', () => {
  it.each(DEPLOY_STAGES)('resolves config/%s.yml into deploy settings', (stage) => {
    const settings = stageSettings(stage, { root: ROOT });
    expect(settings.stage).toBe(stage);
    expect(settings.configFile).toBe(`config/${stage}.yml`);
    expect(settings.bucketName).toBe(`pg-backup-pipeline-${stage}-backups`);
    expect(settings.kmsAlias).toBe(`alias/pg-backup-pipeline-${stage}`);
    expect(settings.storeObjects).toBe('backups/*');
    expect(settings.configuredDatabases).toBe('global_remit');
  });

  it('turns durations into the seconds Step Functions wants, with room for Fargate start-up in the heartbeat', () => {
    const { asl, task } = stageSettings('prod', { root: ROOT });
    expect(task.heartbeatIntervalSeconds).toBe('60');
    expect(asl.dumpHeartbeatSeconds).toBe('300');
    expect(asl.dumpTimeoutSeconds).toBe(String(6 * 3600));
    expect(asl.backupMaxConcurrency).toBe('4');
  });

  it('archives monthly and yearly backups after their daily duty and expires them behind retention', () => {
    const { lifecycle } = stageSettings('prod', { root: ROOT });
    // 7 dailies: a monthly backup is one of them for a week.
    expect(lifecycle.monthlyArchiveAfterDays).toBe(8);
    expect(lifecycle.yearlyArchiveAfterDays).toBe(8);
    // 12 monthly (a year), 7 yearly (seven years) are kept: the backstop comes later.
    expect(lifecycle.monthlyExpireAfterDays).toBeGreaterThan(365);
    expect(lifecycle.yearlyExpireAfterDays).toBeGreaterThan(7 * 365);
  });

  it('follows the most generous per-database retention, since the bucket rules serve every database', async () => {
    const root = await rootWith((c) => {
      c.databases.push({ name: 'archive_heavy', retention: { daily: 30, yearly: 10 } });
    });
    const { lifecycle } = stageSettings('prod', { root });
    expect(lifecycle.monthlyArchiveAfterDays).toBe(31);
    expect(lifecycle.yearlyExpireAfterDays).toBe(31 + 11 * 366);
  });

  it('polls a thaw according to the retrieval tier', async () => {
    expect(stageSettings('prod', { root: ROOT }).asl).toMatchObject({
      thawPollSeconds: '900',
      thawPollRounds: '60',
    });
    const root = await rootWith((c) => {
      c.defaults.restore = { thawTier: 'Bulk' };
    });
    expect(stageSettings('prod', { root }).asl).toMatchObject({
      thawPollSeconds: '1800',
      thawPollRounds: '120',
    });
  });

  it('refuses the local stage, which never deploys', () => {
    expect(() => stageSettings('local', { root: ROOT })).toThrow(/does not deploy/);
  });

  it.each([
    ['aws.network', (c: ConfigYaml) => delete c.aws.network],
    ['aws.taskImage', (c: ConfigYaml) => delete c.aws.taskImage],
    ['aws.logRetentionDays', (c: ConfigYaml) => (c.aws.logRetentionDays = 10)],
    ['aws.taskMemory', (c: ConfigYaml) => (c.aws.taskMemory = 512)],
    ['kmsKeyId', (c: ConfigYaml) => (c.kmsKeyId = 'arn:aws:kms:eu-west-1:123456789012:key/abc')],
    ['connection.passwordSecretId', (c: ConfigYaml) => delete c.connection.passwordSecretId],
    ['store', (c: ConfigYaml) => (c.store = 'file:///srv/backups')],
  ])('fails loudly, naming the file and %s, when the config cannot deploy', async (path, change) => {
    const root = await rootWith(change);
    expect(() => stageSettings('prod', { root })).toThrow(
      expect.objectContaining({
        name: 'ConfigError',
        message: expect.stringContaining(`config/prod.yml: ${path}:`),
      }),
    );
  });

  it('grants image pulls from the ECR repository of the image only', () => {
    expect(ecrRepositoryArn('123456789012.dkr.ecr.eu-west-1.amazonaws.com/pg-backup-pipeline:prod')).toBe(
      'arn:aws:ecr:eu-west-1:123456789012:repository/pg-backup-pipeline',
    );
    expect(ecrRepositoryArn('ghcr.io/acme/pgbp:1')).toBeUndefined();
  });
});
