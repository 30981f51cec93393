import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startScratchServer } from '../../../lib/postgres/scratch-server.js';

const parent = mkdtempSync(join(tmpdir(), 'pgbp-scratch-test-'));
chmodSync(parent, 0o755);
afterAll(() => rmSync(parent, { recursive: true, force: true }));

async function answers(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

describe('a scratch PostgreSQL server', () => {
  it('starts on a loopback port, takes a database, and leaves nothing once stopped', async () => {
    const server = await startScratchServer({ parent });
    try {
      expect(server.connection).toMatchObject({ host: '127.0.0.1', user: 'postgres' });
      expect(server.major).toBeGreaterThanOrEqual(13);
      const client = new pg.Client({ ...server.connection });
      await client.connect();
      try {
        await client.query('create database drill');
        const { rows } = await client.query<{ n: string }>(
          'select count(*) as n from pg_database where datname = $1',
          ['drill'],
        );
        expect(rows[0]?.n).toBe('1');
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
    expect(await answers(server.connection.port)).toBe(false);
    expect(existsSync(server.root)).toBe(false);
    await server.stop();
  });

  it('fails naming what initdb said, and leaves no folder behind', async () => {
    const bindir = mkdtempSync(join(parent, 'bin-'));
    chmodSync(bindir, 0o755);
    writeFileSync(join(bindir, 'initdb'), '#!/bin/sh\necho "initdb: no space left on device" >&2\nexit 1\n');
    chmodSync(join(bindir, 'initdb'), 0o755);
    const before = readdirSync(parent).filter((n) => n.startsWith('pgbp-scratch-'));
    await expect(startScratchServer({ parent, bindir })).rejects.toThrow(
      /could not start a scratch PostgreSQL server: .*no space left on device/,
    );
    expect(readdirSync(parent).filter((n) => n.startsWith('pgbp-scratch-'))).toEqual(before);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'is stopped and removed when its process gets %s, and the process still ends',
    async (signal) => {
      const module = resolve(import.meta.dirname, '../../../lib/postgres/scratch-server.ts');
      const script = join(parent, `hold-${signal}.mts`);
      writeFileSync(
        script,
        `import { startScratchServer } from ${JSON.stringify(module)};\n` +
          `const s = await startScratchServer({ parent: ${JSON.stringify(parent)} });\n` +
          'console.log(JSON.stringify({ port: s.connection.port, root: s.root }));\n' +
          'setInterval(() => {}, 1000);\n',
      );
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const started = await new Promise<{ port: number; root: string }>((resolveStart, reject) => {
        child.stdout.once('data', (d: Buffer) => resolveStart(JSON.parse(d.toString())));
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
      });
      expect(await answers(started.port)).toBe(true);
      const ended = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, s) => r(s)));
      child.kill(signal);
      expect(await ended).toBe(signal);
      expect(existsSync(started.root)).toBe(false);
      expect(await answers(started.port)).toBe(false);
    },
    60_000,
  );
});
