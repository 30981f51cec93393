import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseSettings, loadConfig, storeRetention } from '../../lib/config.js';
import { ConfigError } from '../../lib/domain/errors.js';

/** One folder for the file's configs, removed when it is done. */
const scratch = mkdtempSync(join(tmpdir(), 'pgbp-config-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let files = 0;

function file(text: string): string {
  files += 1;
  const path = join(scratch, `stage-${files}.yml`);
  writeFileSync(path, text);
  return path;
}

describe('config', () => {
  it.each(['local', 'dev', 'staging', 'prod'])('loads the shipped %s stage', (stage) => {
    const config = loadConfig(`config/${stage}.yml`);
    expect(config.stage).toBe(stage);
    expect(Object.isFrozen(config.defaults.retention)).toBe(true);
  });

  it('parses sizes and durations once, with the guide defaults', () => {
    const config = loadConfig(
      file(`stage: dev\nstore: s3://bucket-a/p\ndatabases:\n  - name: app\n    size: { minBytes: 2 MiB }\n`),
    );
    const app = databaseSettings(config, 'app');
    expect(app.size.minBytes).toBe(2 * 1024 * 1024);
    expect(app.retention).toMatchObject({ daily: 7, monthly: 12, yearly: 7 });
    expect(config.defaults.staleAfter).toBe(24 * 3600 * 1000);
    expect(databaseSettings(config, 'unconfigured').configured).toBe(false);
  });

  it('checks rows unless the defaults or the database ask for content, and refuses another depth', () => {
    const config = loadConfig(
      file(
        'stage: dev\nstore: s3://bucket-a/p\ndatabases:\n  - name: ledger\n    restore: { depth: content }\n  - name: app\n',
      ),
    );
    expect(databaseSettings(config, 'ledger').restore.depth).toBe('content');
    expect(databaseSettings(config, 'app').restore.depth).toBe('rows');
    expect(databaseSettings(config, 'unconfigured').restore.depth).toBe('rows');
    const all = loadConfig(
      file('stage: dev\nstore: s3://bucket-a/p\ndefaults: { restore: { depth: content } }\n'),
    );
    expect(databaseSettings(all, 'app').restore.depth).toBe('content');
    const path = file(
      'stage: dev\nstore: s3://bucket-a/p\ndatabases:\n  - name: app\n    restore: { depth: bits }\n',
    );
    expect(() => loadConfig(path)).toThrow(`${path}: databases[0].restore.depth`);
  });

  it('gives the WAL archive the guide defaults: a cluster name, an RPO of 5 minutes, 14 days kept', () => {
    const config = loadConfig(file('stage: dev\nstore: s3://bucket-a/p\n'));
    expect(config.wal).toMatchObject({ cluster: 'main', rpo: 5 * 60_000, retention: 14 * 86_400_000 });
    const path = file('stage: dev\nstore: s3://bucket-a/p\nwal: { cluster: "~x" }\n');
    expect(() => loadConfig(path)).toThrow(`${path}: wal.cluster: a cluster name`);
  });

  it('encrypts under one key per stage, a KMS key or a key file, never both', () => {
    const kms = loadConfig(
      file('stage: dev\nstore: s3://bucket-a/p\nencryption: { kmsKeyId: alias/k, required: true }\n'),
    );
    expect(kms.encryption).toEqual({ kmsKeyId: 'alias/k', required: true });
    const local = loadConfig(file('stage: local\nstore: file:b\nencryption: { keyFile: /etc/pgbp/key }\n'));
    expect(local.encryption).toEqual({ keyFile: '/etc/pgbp/key', required: false });
    const both = file('stage: dev\nstore: s3://bucket-a/p\nencryption: { kmsKeyId: alias/k, keyFile: /k }\n');
    expect(() => loadConfig(both)).toThrow(`${both}: encryption: set exactly one of kmsKeyId and keyFile`);
    const neither = file('stage: dev\nstore: s3://bucket-a/p\nencryption: { required: true }\n');
    expect(() => loadConfig(neither)).toThrow(
      `${neither}: encryption: set exactly one of kmsKeyId and keyFile`,
    );
  });

  it('fails with the file, the key path and what was expected', () => {
    const path = file(
      `stage: dev\nstore: s3://bucket-a/p\ndatabases:\n  - name: app\n    size: { minBytes: lots }\n`,
    );
    expect(() => loadConfig(path)).toThrow(ConfigError);
    expect(() => loadConfig(path)).toThrow(`${path}: databases[0].size.minBytes: expected a size such as`);
  });

  it('rejects unknown keys, so a typo does not silently fall back to a default', () => {
    const path = file(`stage: dev\nstore: s3://bucket-a/p\ndefaults:\n  retention: { dayly: 3 }\n`);
    expect(() => loadConfig(path)).toThrow(/defaults\.retention: Unrecognized key: "dayly"/);
  });

  it('restores drills into a scratch server unless told otherwise, and wants a server for target server', () => {
    expect(loadConfig(file('stage: dev\nstore: s3://bucket-a/p\n')).drill).toEqual({ target: 'scratch' });
    const path = file('stage: dev\nstore: s3://bucket-a/p\ndrill: { target: server }\n');
    expect(() => loadConfig(path)).toThrow(`${path}: drill.server: target server needs drill.server`);
  });

  it('names a primary and a secondary store, each with its own retention over the database', () => {
    const config = loadConfig(
      file(
        [
          'stage: dev',
          'stores:',
          '  primary: { url: file:///nas/pg-backups, retention: { daily: 7, monthly: 0, yearly: 0 } }',
          '  secondary: { url: s3://bucket-a/backups, storageClass: STANDARD_IA }',
          'databases:',
          '  - name: app',
          '    retention: { daily: 14 }',
        ].join('\n'),
      ),
    );
    expect(config.store).toBe('file:///nas/pg-backups');
    expect(config.stores.secondary?.url).toBe('s3://bucket-a/backups');
    expect(storeRetention(config, 'primary', 'app')).toMatchObject({ daily: 7, monthly: 0, yearly: 0 });
    expect(storeRetention(config, 'secondary', 'app')).toMatchObject({ daily: 14, monthly: 12, yearly: 7 });
    const single = loadConfig(file('stage: dev\nstore: s3://bucket-a/p\n'));
    expect(single.stores).toEqual({ primary: { url: 's3://bucket-a/p' } });
    expect(() => loadConfig(file('stage: dev\n'))).toThrow(/store: expected a store URL/);
    expect(() =>
      loadConfig(
        file(
          'stage: dev\nstores:\n  primary: { url: s3://bucket-a/p }\n  secondary: { url: s3://bucket-a/p }\n',
        ),
      ),
    ).toThrow(/stores\.secondary\.url: the secondary store must be another store/);
  });

  it('names a missing file and a broken YAML file', () => {
    expect(() => loadConfig('/nonexistent/stage.yml')).toThrow('/nonexistent/stage.yml: cannot read');
    expect(() => loadConfig(file('stage: [dev'))).toThrow(/not valid YAML/);
  });
});
