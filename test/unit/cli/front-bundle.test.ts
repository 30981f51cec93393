import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../../lib/state-machines.js';

const root = projectRoot();
const { buildAll } = (await import(pathToFileURL(join(root, 'cli/bundle.mjs')).href)) as {
  buildAll: (root: string, outRoot?: string) => Promise<string>;
};

/** A copy of the sources the CLI is built from, to change and build apart from the install. */
function sourceCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgbp-front-'));
  for (const part of ['package.json', 'cli', 'lib', 'tasks', 'functions', 'statemachines']) {
    cpSync(join(root, part), join(dir, part), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

const copies: string[] = [];
afterAll(() => {
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
});

describe("the CLI's front (dist/cli/main.cjs, what every start of pgbp loads)", () => {
  it('holds the command line but not the modules that run children or stop them on an interrupt', () => {
    // One copy of each: a second one in the front would not know the children the work started.
    const front = readFileSync(join(root, 'dist/cli/main.cjs'), 'utf8');
    expect(front).toContain('// cli/commands/status.ts');
    expect(front).toContain('// node_modules/commander/');
    for (const work of ['lib/platform/processes.ts', 'lib/platform/interrupts.ts', 'lib/config.ts', 'zod']) {
      expect(front).not.toContain(`// ${work}`);
      expect(front).not.toContain(`// node_modules/${work}/`);
    }
  });

  it('starts as well with a code cache that does not fit its front (edited, truncated, not a cache) as with none', async () => {
    const install = mkdtempSync(join(tmpdir(), 'pgbp-front-cache-'));
    copies.push(install);
    for (const part of ['package.json', 'cli', 'dist/cli', 'dist/work']) {
      cpSync(join(root, part), join(install, part), { recursive: true, preserveTimestamps: true });
    }
    const front = join(install, 'dist/cli/main.cjs');
    // Asked in a process of its own: V8 compiles a source it has seen before from memory.
    const cacheRejected = () =>
      spawnSync(
        process.execPath,
        [
          '-e',
          `process.stdout.write(String(require(process.argv[1]).loadFront(process.argv[2]).cacheRejected))`,
          join(install, 'cli/front.cjs'),
          front,
        ],
        { encoding: 'utf8' },
      ).stdout;
    // The copy kept the times, so its cache fits: the start below compiles nothing it holds.
    expect(cacheRejected()).toBe('false');
    const cache = join(install, 'dist/cli/main.cjs.cache');
    const run = (args: string[]) =>
      spawnSync(process.execPath, [join(install, 'cli/pgbp.cjs'), ...args], {
        encoding: 'utf8',
        cwd: install,
      });
    const store = join(install, 'store');
    mkdirSync(store);
    const expected: [string, string] = [
      run(['status', '--help']).stdout,
      run(['list', '--store', `file://${store}`, '--json']).stdout,
    ];
    expect(expected[0]).toContain('Usage: pgbp status');
    expect(expected[1]).toBe('[]\n');
    const made = readFileSync(cache);
    for (const damage of [
      (bytes: Buffer) => bytes.subarray(0, bytes.length - 1000),
      (bytes: Buffer) => Buffer.concat([bytes.subarray(0, 16), Buffer.from('not a cache')]),
      () => Buffer.from('not a cache'),
    ]) {
      writeFileSync(cache, damage(made));
      expect(cacheRejected()).not.toBe('false');
      const help = run(['status', '--help']);
      const list = run(['list', '--store', `file://${store}`, '--json']);
      expect([help.stdout, list.stdout]).toEqual(expected);
      expect(help.stderr + list.stderr).toBe('');
    }
    // A front edited after its cache was made (same length, so V8 alone would take the cache).
    writeFileSync(cache, made);
    const built = statSync(front).mtime;
    writeFileSync(
      front,
      readFileSync(front, 'utf8').replace('Per database: newest backup', 'Per database: NEWEST backup'),
    );
    utimesSync(front, built, new Date(built.getTime() + 5_000));
    expect(run(['status', '--help']).stdout).toBe(expected[0].replace('newest backup', 'NEWEST backup'));
    rmSync(cache);
    expect(run(['status', '--help']).stdout).toBe(expected[0].replace('newest backup', 'NEWEST backup'));
  });

  it('fails to build, naming the import, when a command declaration imports work statically', async () => {
    const dir = sourceCopy();
    copies.push(dir);
    const status = join(dir, 'cli/commands/status.ts');
    writeFileSync(
      status,
      `import { stopAllChildren } from '../../lib/platform/processes.js';\nexport const stop = stopAllChildren;\n${readFileSync(status, 'utf8')}`,
    );
    await expect(buildAll(dir, join(dir, 'dist'))).rejects.toThrow(
      /cli\/commands\/status\.ts imports lib\/platform\/processes\.ts statically: .*await import/,
    );
  });
});
