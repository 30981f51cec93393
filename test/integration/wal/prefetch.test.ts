/**
 * The prefetcher (lib/wal/prefetch.ts) beside a recovery that takes its segments as the launcher
 * does, against a directory store and S3 (moto): what it reads of the archive.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseWalObjectKey } from '../../../lib/domain/physical-layout.js';
import { systemClock } from '../../../lib/platform/clock.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { S3Store } from '../../../lib/storage/s3-store.js';
import type { BackupStore } from '../../../lib/storage/store.js';
import { WalArchive } from '../../../lib/wal/archive.js';
import { prefetchAhead } from '../../../lib/wal/prefetch.js';
import { pushWal } from '../../../lib/wal/push.js';
import { prefetchDir, type SpoolEntry, spooled, writePosition } from '../../../lib/wal/spool.js';
import { createBucket } from '../../support/s3.js';
import { tempDir } from '../../support/temp.js';
import { segmentBytes } from '../../support/wal-bytes.js';

const names = Array.from({ length: 6 }, (_, i) => `00000001000000000000000${i + 1}`);
const taken = names.slice(0, -1);

/** The store, with the reads of each segment's object counted (a GET each from S3, through the SDK or a plain one). */
function counted(store: BackupStore): { store: BackupStore; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const note = (key: string) => {
    const name = parseWalObjectKey(key)?.name;
    if (name) reads.set(name, (reads.get(name) ?? 0) + 1);
  };
  const local = store.capabilities.local;
  const fileOf = local?.fileOf;
  const direct = store.capabilities.directGet;
  return {
    store: Object.assign(Object.create(store) as BackupStore, {
      getBytes: (key: string) => {
        note(key);
        return store.getBytes(key);
      },
      getStream: (key: string) => {
        note(key);
        return store.getStream(key);
      },
      capabilities: {
        ...store.capabilities,
        ...(direct
          ? {
              directGet: {
                open: (key: string) => {
                  note(key);
                  return direct.open(key);
                },
              },
            }
          : {}),
        ...(local && fileOf
          ? {
              local: {
                ...local,
                fileOf: (key: string) => {
                  note(key);
                  return fileOf.call(local, key);
                },
              },
            }
          : {}),
      },
    }),
    reads,
  };
}

/** The spool's entry of `name`, once the prefetcher has spooled it. */
async function spooledEntry(dir: string, name: string): Promise<SpoolEntry> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const entry = spooled(dir).get(name);
    if (entry) return entry;
    if (Date.now() > deadline) throw new Error(`${name} was never spooled`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const stores: [string, () => Promise<BackupStore>][] = [
  ['a directory store', async () => new FileStore(tempDir('pgbp-prefetch-store-'))],
  ['S3', async () => new S3Store(await createBucket(), 'prefetch')],
];

describe.each(stores)('the prefetcher reading %s', (_label, open) => {
  it('reads each segment once, though recovery takes it from the spool before it says so', async () => {
    const work = tempDir('pgbp-prefetch-');
    const { store, reads } = counted(await open());
    const archives = [{ role: 'primary' as const, archive: new WalArchive(store, 'main') }];
    mkdirSync(join(work, 'pg_wal'));
    for (const name of names) {
      writeFileSync(join(work, 'pg_wal', name), segmentBytes());
      await pushWal(join(work, 'pg_wal', name), {
        archives,
        level: 1,
        dataDir: work,
        clock: systemClock,
        env: process.env,
      });
    }
    reads.clear();
    const data = join(work, 'data');
    mkdirSync(join(data, 'pg_wal'), { recursive: true });
    writeFileSync(join(data, 'postmaster.pid'), '');
    writeFileSync(join(data, 'recovery.signal'), '');
    const tag = 'test';
    const dir = prefetchDir(data, tag);
    const running = prefetchAhead('000000010000000000000000', {
      archives,
      env: process.env,
      dataDir: data,
      tag,
      count: 3,
      concurrency: 2,
    });
    try {
      // All but the archive's last: past its end the last one is spooled again (recovery asks twice).
      for (const name of taken) {
        const entry = await spooledEntry(dir, name);
        // The launcher renames the entry into place, then writes the position: a while here
        // (longer than the prefetcher's polls), in which the spool lacks the segment after it.
        renameSync(join(dir, entry.file), join(data, 'pg_wal', 'RECOVERYXLOG'));
        await new Promise((r) => setTimeout(r, 300));
        await writePosition(dir, name);
      }
    } finally {
      rmSync(join(data, 'recovery.signal'));
      await running;
    }
    expect(Object.fromEntries(taken.map((n) => [n, reads.get(n)]))).toEqual(
      Object.fromEntries(taken.map((n) => [n, 1])),
    );
    expect(Math.max(...reads.values())).toBe(1);
  }, 60_000);
});
