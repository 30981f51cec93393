import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');

/** What `serverless package` reads, copied: it empties the service's .serverless and writes work folders beside it. */
const SERVICE_FILES = [
  'serverless.yml',
  'package.json',
  'tsconfig.json',
  'config',
  'deploy',
  'functions',
  'lib',
  'statemachines',
];

// biome-ignore lint/suspicious/noExplicitAny: the generated CloudFormation, read as untyped JSON
type Cfn = Record<string, any>;

export interface PackagedStack {
  readonly template: {
    Resources: Record<string, Cfn>;
    Outputs: Record<string, Cfn>;
    Conditions?: Record<string, Cfn>;
  };
  /** The function packages (`<key>.zip`). */
  readonly packageDir: string;
  remove(): Promise<void>;
}

/**
 * `serverless package --stage STAGE` of a copy of the project, offline and with no AWS account
 * (dummy credentials; no call is made), with `configs` (a path under config/ → its text) written
 * over the copy's stage configs; the generated CloudFormation read as data.
 */
export async function packageStack(
  stage: string,
  configs: Record<string, string> = {},
): Promise<PackagedStack> {
  const out = await mkdtemp(join(tmpdir(), 'pgbp-package-'));
  try {
    const service = join(out, 'service');
    const tmp = join(out, 'tmp');
    const packageDir = join(out, 'package');
    await mkdir(service);
    await mkdir(tmp);
    for (const f of SERVICE_FILES) await cp(join(ROOT, f), join(service, f), { recursive: true });
    for (const [file, text] of Object.entries(configs)) await writeFile(join(service, 'config', file), text);
    await symlink(join(ROOT, 'node_modules'), join(service, 'node_modules'));
    const env = {
      PATH: process.env.PATH,
      HOME: out,
      // The framework leaves per-function folders in the temporary directory: this run's own.
      TMPDIR: tmp,
      AWS_ACCESS_KEY_ID: 'offline',
      AWS_SECRET_ACCESS_KEY: 'offline',
      AWS_REGION: 'eu-west-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    await run(
      process.execPath,
      [
        join(ROOT, 'node_modules/serverless/bin/serverless.js'),
        'package',
        '--stage',
        stage,
        '--package',
        packageDir,
      ],
      { cwd: service, env, timeout: 110_000, maxBuffer: 16 * 1024 * 1024 },
    );
    const template = JSON.parse(
      await readFile(join(packageDir, 'cloudformation-template-update-stack.json'), 'utf8'),
    );
    return { template, packageDir, remove: () => rm(out, { recursive: true, force: true }) };
  } catch (error) {
    await rm(out, { recursive: true, force: true });
    throw error;
  }
}
