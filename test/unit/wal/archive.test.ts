import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ForeignClusterError } from '../../../lib/domain/errors.js';
import { parseWalFileName, type WalFileName } from '../../../lib/domain/wal-names.js';
import { systemClock } from '../../../lib/platform/clock.js';
import { FileStore } from '../../../lib/storage/file-store.js';
import { IdentifiedWalArchive } from '../../../lib/wal/archive.js';
import { pushWal } from '../../../lib/wal/push.js';
import { tempDir } from '../../support/temp.js';
import { segmentBytes } from '../../support/wal-bytes.js';

/** A directory store that notes every object it reads whole. */
class ReadCountingStore extends FileStore {
  readonly reads: string[] = [];

  override getBytes(key: string): Promise<Buffer> {
    this.reads.push(key);
    return super.getBytes(key);
  }
}

describe('the archive as the pusher sees it over a burst', () => {
  it('reads archive.json once for segment after segment, and still refuses a segment of another cluster', async () => {
    const root = tempDir('pgbp-archive-');
    const store = new ReadCountingStore(join(root, 'store'));
    const archive = new IdentifiedWalArchive(store, 'main');
    const deps = {
      archives: [{ role: 'primary' as const, archive }],
      level: 1,
      dataDir: root,
      clock: systemClock,
      env: process.env,
    };
    const push = (name: string, bytes: Buffer) => {
      writeFileSync(join(root, name), bytes);
      return pushWal(join(root, name), deps);
    };
    for (const name of ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003']) {
      expect((await push(name, segmentBytes())).status).toBe('stored');
    }
    // The first push claimed the archive; the second read its identity, the third remembered it.
    expect(store.reads.filter((key) => key === archive.infoKey)).toHaveLength(1);
    const foreign = segmentBytes();
    foreign.writeBigUInt64LE(1234567890123456789n, 24);
    await expect(push('000000010000000000000004', foreign)).rejects.toThrow(ForeignClusterError);
    expect(await archive.find(parseWalFileName('000000010000000000000004') as WalFileName)).toEqual([]);
  });
});
