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
# Dated by this host's clock, as the file store dates what it writes.
touch -d "@$(date +%s.%N)" "$d/.$f.tmp"
mv "$d/.$f.tmp" "$d/$f-$sha.zst"
`,
  );
  chmodSync(script, 0o755);
  return `${script} %p %f`;
}

/** The restore_command that reads what {@link layoutArchiveCommand} stored: exit 1 when a file is not there. */
export function layoutRestoreCommand(root: string, storeDir: string, cluster: string): string {
  const wal = join(storeDir, PHYSICAL_ROOT, cluster, 'wal');
  postgresDir(root, 'bin');
  const script = join(root, 'bin', 'restore-wal.sh');
  writeFileSync(
    script,
    `#!/bin/sh
f="$1"; p="$2"
case "$f" in
  *.history) d="${wal}/history" ;;
  *) d="${wal}/$(printf %s "$f" | cut -c1-16)" ;;
esac
for o in "$d/$f"-*.zst; do
  [ -f "$o" ] || exit 1
  zstd -d -q -c "$o" > "$p.tmp" && mv "$p.tmp" "$p" && exit 0
  exit 2
done
exit 1
`,
  );
  chmodSync(script, 0o755);
  return `${script} %f %p`;
}

/** Switches to a new WAL segment and waits until the archiver has stored the one it closed. */
export async function switchAndWaitArchived(cluster: { sql(s: string): string }): Promise<string> {
  const closed = cluster.sql('select pg_walfile_name(pg_switch_wal())');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const last = cluster.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
    if (last !== '' && last.slice(0, 24) >= closed.slice(0, 24)) return closed;
    if (Date.now() > deadline) throw new Error(`${closed} was not archived within a minute`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
