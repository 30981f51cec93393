import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, storeRetention } from '../../lib/config.js';
import { projectRoot } from '../../lib/state-machines.js';

const configDir = join(projectRoot(), 'config');

describe('the shipped config files', () => {
  it.each(readdirSync(configDir).filter((f) => f.endsWith('.yml')))('config/%s validates', (file) => {
    expect(() => loadConfig(join(configDir, file))).not.toThrow();
  });

  it('config/nas.yml: local mode on an absolute NAS path, the guide’s 7 daily there and the GFS tiers in S3, as postgres on the socket', () => {
    const config = loadConfig(join(configDir, 'nas.yml'));
    expect(config.mode).toBe('local');
    // A relative file:// store would be taken from the working directory: the install.
    expect(config.store).toMatch(/^file:\/\/\/\S+/);
    expect(config.connection).toMatchObject({ host: '/var/run/postgresql', user: 'postgres' });
    expect(config.databases.length).toBeGreaterThan(0);
    expect(config.stores.secondary?.url).toMatch(/^s3:\/\//);
    for (const { name } of config.databases) {
      // Monthly and yearly copies belong in S3 (Glacier, Deep Archive), not on the NAS.
      expect(storeRetention(config, 'primary', name)).toMatchObject({ daily: 7, monthly: 0, yearly: 0 });
      expect(storeRetention(config, 'secondary', name)).toMatchObject({ daily: 7, monthly: 12, yearly: 7 });
    }
    expect(config.alerts.console).toBe(true);
  });
});
