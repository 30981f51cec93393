import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Manifest } from '../../../lib/domain/manifest.js';
import { runCli } from '../../support/cli.js';
import { ROOT } from './harness.js';

/**
 * What a newcomer runs after `npm ci`: `npm start`. Its command is run here as a child process
 * on a copy of config/local.yml whose store is a temporary directory instead of ./backups.
 */

const work = mkdtempSync(join(tmpdir(), 'pgbp-npm-start-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm start', () => {
  it('is pgbp backup on config/local.yml', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: { start: string };
    };
    expect(pkg.scripts.start).toBe('node cli/pgbp.cjs backup --config config/local.yml');
  });

  it('backs up, checks the size, applies retention, prints a report and exits 0, leaving a backup pgbp list lists', async () => {
    const local = parse(readFileSync(join(ROOT, 'config/local.yml'), 'utf8')) as Record<string, unknown>;
    const config = join(work, 'local.yml');
    writeFileSync(config, stringify({ ...local, store: `file://${join(work, 'backups')}` }));

    const start = await runCli(['backup', '--config', config]);

    expect(start.code, `${start.stdout}\n${start.stderr}`).toBe(0);
    expect(start.stdout).toContain('    CheckSize [postgres] succeeded');
    expect(start.stdout).toContain('  ApplyRetention succeeded');
    expect(start.stdout).toMatch(/\nBackups:\n {2}postgres {2}postgres-\d{8}T\d{6}Z .* size ok\n/);
    expect(start.stdout).toMatch(/\nbackup succeeded in [\d.]+ s /);

    const list = await runCli(['list', '--json', '--config', config]);
    expect(list.code, list.stderr).toBe(0);
    const manifests = JSON.parse(list.stdout) as Manifest[];
    expect(manifests.map((m) => m.database)).toEqual(['postgres']);
    expect(start.stdout).toContain(`  postgres  ${manifests[0]?.id}  `);
  });
});
