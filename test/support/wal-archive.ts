import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PHYSICAL_ROOT } from '../../lib/domain/physical-layout.js';
import { postgresDir } from './scratch-cluster.js';

/**
 * An archive_command that stores each WAL file in a directory store by the physical layout
 * (`~cluster/<cluster>/wal/<folder>/<name>-<sha256>.zst`), as the postgres OS user, with
 * shell tools only: what base backups and recoveries read, independent of the code under test.
 */
export function layoutArchiveCommand(root: string, storeDir: string, cluster: string): string {
  const wal = join(storeDir, PHYSICAL_ROOT, cluster, 'wal');
  for (const dir of [PHYSICAL_ROOT, join(PHYSICAL_ROOT, cluster), join(PHYSICAL_ROOT, cluster, 'wal')])
    postgresDir(storeDir, dir);
  postgresDir(root, 'bin');
  const script = join(root, 'bin', 'archive-wal.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
p="$1"; f="$2"
case "$f" in
  *.history) d="${wal}/history" ;;
  *) d="${wal}/$(printf %s "$f" | cut -c1-16)" ;;
esac
mkdir -p "$d"
sha=$(sha256sum "$p" | cut -c1-64)
zstd -q -c "$p" > "$d/.$f.tmp"
mv "$d/.$f.tmp" "$d/$f-$sha.zst"
`,
  );
  chmodSync(script, 0o755);
  return `${script} %p %f`;
}
