import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/**
 * A second, throw-away PostgreSQL server that demands a password (the shared test server
 * trusts everyone), for the wrong-password cases. Started as the postgres OS user.
 */
export interface ScratchCluster {
  readonly port: number;
  readonly password: string;
  stop(): void;
}

function pgBin(tool: string): string {
  const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  return join(dir, tool);
}

export async function startPasswordCluster(password: string): Promise<ScratchCluster> {
  const root = mkdtempSync(join(tmpdir(), 'pgbp-cluster-'));
  const data = join(root, 'data');
  const pwfile = join(root, 'pw');
  writeFileSync(pwfile, `${password}\n`);
  const { uid, gid } = (() => {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  })();
  chownSync(root, uid, gid);
  chownSync(pwfile, uid, gid);
  chmodSync(root, 0o700);
  const asPostgres = (args: string[]) => {
    const r = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args[0]} failed: ${r.stderr || r.stdout}`);
  };
  asPostgres([
    pgBin('initdb'),
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=scram-sha-256',
    `--pwfile=${pwfile}`,
    '-E',
    'UTF8',
  ]);
  const port = await freePort();
  asPostgres([
    pgBin('pg_ctl'),
    '-D',
    data,
    '-w',
    '-l',
    join(root, 'log'),
    '-o',
    `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off`,
    'start',
  ]);
  return {
    port,
    password,
    stop() {
      spawnSync('runuser', ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', data, '-m', 'immediate', 'stop']);
      rmSync(root, { recursive: true, force: true });
    },
  };
}
