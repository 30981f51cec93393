import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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
