import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyTier, parseBackupId } from '../../../lib/domain/backup-layout.js';
import { type Manifest, parseManifest } from '../../../lib/domain/manifest.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import { PGBP, runCli, sh } from '../../support/cli.js';
import { snapshot } from '../../support/compare.js';
import { createDatabase, dropDatabase, uniqueDbName } from '../../support/pg.js';
import { createBucket } from '../../support/s3.js';
import { dump } from '../restore/fixture.js';

const awkward = readFileSync(new URL('../../fixtures/awkward.sql', import.meta.url), 'utf8');
const created: string[] = [];
const work = mkdtempSync(join(tmpdir(), 'pgbp-roundtrip-'));
let source: string;
let sourceSnapshot: Awaited<ReturnType<typeof snapshot>>;

beforeAll(async () => {
  source = uniqueDbName('awkward');
  created.push(source);
  await createDatabase(source, awkward);
  sourceSnapshot = await snapshot(source);
});

afterAll(async () => {
  for (const db of created) await dropDatabase(db);
  rmSync(work, { recursive: true, force: true });
});

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

async function dumpWithCli(store: string, config?: string): Promise<Manifest> {
  const args = ['dump', '--database', source, '--store', store, '--json'];
  if (config) args.push('--config', config);
  const result = await runCli(args);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return parseManifest(JSON.parse(result.stdout));
}

/** The README's "Restoring without this project" commands, run as written there. */
async function restoreWithToolsOnly(file: string, manifest: Manifest): Promise<string> {
  const target = uniqueDbName('restored');
  created.push(target);
  const decompress = manifest.compression.codec === 'zstd' ? `zstd -dc '${file}' | ` : '';
  const input = manifest.compression.codec === 'zstd' ? '' : ` '${file}'`;
  const result = await sh(
    `createdb '${target}' && ${decompress}pg_restore --no-owner -d '${target}'${input}`,
  );
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return target;
}

describe('backup round trip of the awkward fixture', () => {
  it('to the file store restores with pg_restore and zstd alone to an equal database', async () => {
    const dir = join(work, 'nas');
    const manifest = await dumpWithCli(`file://${dir}`);
    expect(manifest).toMatchObject({ database: source, format: 'custom', compression: { codec: 'zstd' } });
    const file = join(dir, manifest.key);
    expect(sha256File(file)).toBe(manifest.sha256);
    expect(readFileSync(file).length).toBe(manifest.sizeBytes);
    const stored = parseManifest(JSON.parse(readFileSync(file.replace(/\.dump$/, '.manifest.json'), 'utf8')));
    expect(stored).toEqual(manifest);
    expect(manifest.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(
      expect.arrayContaining([
        'core.transactions',
        'core.transactions_2025',
        'Reporting Ünïcode.Daily Totals (EUR)',
      ]),
    );

    const restored = await restoreWithToolsOnly(file, manifest);
    const after = await snapshot(restored);
    expect(after.schema).toBe(sourceSnapshot.schema);
    expect(after.tables).toEqual(sourceSnapshot.tables);
    expect(Object.keys(after.largeObjects)).toHaveLength(3);
    expect(after.largeObjects).toEqual(sourceSnapshot.largeObjects);
    expect(after.sequences).toEqual(sourceSnapshot.sequences);
  });

  it('to S3 stores an object whose digest is the manifest sha256 and which restores equal', async () => {
    const bucket = await createBucket();
    const manifest = await dumpWithCli(`s3://${bucket}/backups`);
    expect(manifest.key.startsWith(`backups/${source}/`)).toBe(true);
    expect(manifest.encryption.type).not.toBe('none');
    const store = new S3Store(bucket, 'backups');
    expect(await store.getTags(manifest.key)).toEqual({ tier: manifest.tier });
    const file = join(work, 'from-s3.dump');
    await pipeline(await store.getStream(manifest.key), createWriteStream(file));
    expect(sha256File(file)).toBe(manifest.sha256);

    const restored = await restoreWithToolsOnly(file, manifest);
    const after = await snapshot(restored);
    expect(after).toEqual(sourceSnapshot);
  });

  it.each(['gzip', 'none'] as const)('with %s compression restores with plain pg_restore', async (codec) => {
    const config = join(work, `${codec}.yml`);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(config, `stage: local\nstore: file://${work}/unused\ndump: { compression: ${codec} }\n`);
    const manifest = await dumpWithCli(`file://${join(work, codec)}`, config);
    expect(manifest.compression.codec).toBe(codec);
    const restored = await restoreWithToolsOnly(join(work, codec, manifest.key), manifest);
    expect((await snapshot(restored)).tables).toEqual(sourceSnapshot.tables);
  });

  it('on a machine without stdbuf dumps all the same, and the backup restores equal', async () => {
    // A PATH that holds only the tools a dump needs.
    const bin = join(work, 'bare-bin');
    mkdirSync(bin);
    for (const tool of ['pg_dump', 'pg_dumpall', 'zstd']) {
      symlinkSync((await sh(`command -v ${tool}`)).stdout.trim(), join(bin, tool));
    }
    const dir = join(work, 'no-stdbuf');
    const result = await runCli(['dump', '--database', source, '--store', `file://${dir}`, '--json'], {
      env: { PATH: bin },
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const manifest = parseManifest(JSON.parse(result.stdout));
    expect(sha256File(join(dir, manifest.key))).toBe(manifest.sha256);
    const restored = await restoreWithToolsOnly(join(dir, manifest.key), manifest);
    expect((await snapshot(restored)).tables).toEqual(sourceSnapshot.tables);
  });

  it('lists the backups it made, newest first, as JSON manifests', async () => {
    const dir = join(work, 'listing');
    // One second apart, across a year's end: ids, tiers and directories all differ, whatever today is.
    const store = new FileStore(dir);
    const first = await dump(store, source, { at: new Date('2026-12-31T23:59:59Z') });
    const second = await dump(store, source, { at: new Date('2027-01-01T00:00:00Z') });
    expect([first.tier, second.tier]).toEqual(['daily', 'yearly']);
    const result = await runCli(['list', '--database', source, '--store', `file://${dir}`, '--json']);
    expect(result.code).toBe(0);
    const listed = JSON.parse(result.stdout) as Manifest[];
    expect(listed.map((m) => m.id)).toEqual([second.id, first.id]);
  });

  it('on a terminal shows progress and ends with a one-line summary', async () => {
    const dir = join(work, 'tty');
    // `script` gives the command a pseudo-terminal, as a person at a shell would have.
    const result = await sh(
      `script -qec "node ${PGBP} dump --database ${source} --store file://${dir}" /dev/null`,
    );
    expect(result.code).toBe(0);
    const screen = result.stdout.replace(/\r\n/g, '\n');
    expect(screen).toMatch(/dump pgbp_t_awkward_\w+: [\d.]+ (B|KiB|MiB) +[\d.]+ (B|KiB|MiB)\/s/);
    const summary = screen
      .split('\n')
      .filter((l) => l.includes(' backup of '))
      .map((l) => l.split('\u001b[2K').at(-1) ?? l);
    expect(summary).toHaveLength(1);
    // The tier follows the backup's own UTC date (the 1st of a month is monthly), not the test's.
    const id = summary[0]?.split(':')[0] ?? '';
    const takenAt = parseBackupId(id)?.createdAt;
    expect(takenAt).toBeDefined();
    expect(summary[0]).toMatch(
      new RegExp(
        `^${id}: ${classifyTier(takenAt as Date)} backup of ${source}, .* zstd, .* tables → file://`,
      ),
    );
  });
});
