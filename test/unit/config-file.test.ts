import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFileExists, findConfigFile } from '../../lib/config.js';
import { tempDir } from '../support/temp.js';

describe('findConfigFile', () => {
  const cwd = '/srv/pgbp';

  it('takes the file named on the command line over PGBP_CONFIG, relative to the working directory', () => {
    expect(findConfigFile({ PGBP_CONFIG: 'config/prod.yml' }, cwd, 'mine.yml')).toEqual({
      path: '/srv/pgbp/mine.yml',
      named: true,
    });
  });

  it('takes PGBP_CONFIG when no file is named', () => {
    expect(findConfigFile({ PGBP_CONFIG: 'config/prod.yml' }, cwd)).toEqual({
      path: '/srv/pgbp/config/prod.yml',
      named: true,
    });
  });

  it("falls back to the stage's file beside a Lambda's code, or in the working directory", () => {
    expect(findConfigFile({ PGBP_STAGE: 'prod', LAMBDA_TASK_ROOT: '/var/task' }, cwd).path).toBe(
      '/var/task/config/prod.yml',
    );
    expect(findConfigFile({}, cwd)).toEqual({ path: '/srv/pgbp/config/local.yml', named: false });
  });

  it('counts a named file as there, and the default only when it exists', () => {
    const dir = tempDir('pgbp-config-');
    expect(configFileExists(findConfigFile({}, dir))).toBe(false);
    expect(configFileExists(findConfigFile({}, dir, 'missing.yml'))).toBe(true);
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'local.yml'), 'stage: local\n');
    expect(configFileExists(findConfigFile({}, dir))).toBe(true);
  });
});
