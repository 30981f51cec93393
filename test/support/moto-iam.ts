import { type ChildProcess, spawn } from 'node:child_process';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  type IAMClient,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import { freePort } from './ports.js';

/**
 * A moto server of its own that enforces IAM: the first `setupRequests` requests (creating the
 * bucket, the key, the users with their policies and access keys) pass unauthenticated, every
 * later one is checked against the caller's policies (moto's INITIAL_NO_AUTH_ACTION_COUNT).
 * The shared test server cannot do this: it would refuse every other test's requests.
 */
export interface EnforcingMoto {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startEnforcingMoto(setupRequests: number): Promise<EnforcingMoto> {
  const port = await freePort();
  let output = '';
  const child: ChildProcess = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: String(setupRequests) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto server exited (${child.exitCode}): ${output}`);
    try {
      // The moto API is not an AWS action: it does not count towards the unauthenticated ones.
      if ((await fetch(`${url}/moto-api/`)).ok) return { url, stop };
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`moto server did not answer at ${url} within 30 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation, read as untyped JSON
type Cfn = any;

/**
 * A role's policy document from the packaged template, with its intrinsics resolved to the
 * resources of a test account: `values` maps logical ids (their Ref and Arn) and `${…}` names.
 */
export function resolvePolicy(statements: Cfn[], values: Readonly<Record<string, string>>): Cfn[] {
  const lookup = (name: string): string => values[name] ?? `arn:aws:unresolved:::${name}`;
  const resolve = (v: Cfn): Cfn => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null) return v;
    if (Array.isArray(v)) return v.map(resolve);
    if ('Fn::GetAtt' in v) return lookup(`${v['Fn::GetAtt'][0]}.${v['Fn::GetAtt'][1]}`);
    if ('Ref' in v) return lookup(v.Ref);
    if ('Fn::Sub' in v) {
      const template = typeof v['Fn::Sub'] === 'string' ? v['Fn::Sub'] : v['Fn::Sub'][0];
      return template.replace(/\$\{([^}]+)\}/g, (_: string, name: string) => lookup(name));
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
  };
  return statements.map(resolve);
}

/** An IAM user with one inline policy of `statements`, and its access key. */
export async function createUser(
  iam: IAMClient,
  name: string,
  statements: readonly unknown[],
): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  await iam.send(new CreateUserCommand({ UserName: name }));
  await iam.send(
    new PutUserPolicyCommand({
      UserName: name,
      PolicyName: name,
      PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: statements }),
    }),
  );
  const created = await iam.send(new CreateAccessKeyCommand({ UserName: name }));
  return {
    accessKeyId: created.AccessKey?.AccessKeyId ?? '',
    secretAccessKey: created.AccessKey?.SecretAccessKey ?? '',
  };
}
