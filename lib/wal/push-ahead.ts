import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseWalFileName } from '../domain/wal-names.js';
import { type DegradedStore, type PushDeps, type PushOutcome, pushWal, type RoleArchive } from './push.js';
import { entryName, pushedDir, sweep, takePushRecord } from './spool.js';

/** Records older than this are of an earlier life of the data directory. */
const STALE_MS = 24 * 3_600_000;

/**
 * archive_command for bursts: besides its own file, one call stores up to `ahead` other
 * segments that PostgreSQL has marked ready (`pg_wal/archive_status/*.ready`), in parallel,
 * and records each once it is durably stored. When PostgreSQL then asks for one of those, the
 * record (`<name>-<sha256>`) answers if the file still has that digest; otherwise the file is
 * pushed as usual (cli/wal-fast-path.ts answers such a call before the CLI loads). A call
 * returns 0 only for its own file durably stored, now or before.
 */
export async function pushWithAhead(
  path: string,
  deps: PushDeps & { readonly ahead: number; readonly tag: string },
): Promise<PushOutcome & { readonly pushedAhead: number }> {
  const file = parseWalFileName(basename(path));
  if (file?.kind !== 'segment' || deps.ahead === 0) return { ...(await pushWal(path, deps)), pushedAhead: 0 };
  const records = pushedDir(deps.dataDir, deps.tag);
  const recorded = await takePushRecord(records, file.name, path);
  if (recorded) {
    return {
      name: file.name,
      status: 'already-stored',
      key: (deps.archives[0] as RoleArchive).archive.keyOf(file, recorded.sha256),
      ...recorded,
      pushedAhead: 0,
    };
  }
  await sweep(records, (n) => n < file.name, STALE_MS);
  const pgWal = dirname(path);
  const ready = (await readdir(join(pgWal, 'archive_status')).catch(() => [] as string[]))
    .filter((n) => n.endsWith('.ready'))
    .map((n) => n.slice(0, -'.ready'.length))
    .filter((n) => parseWalFileName(n)?.kind === 'segment' && n > file.name)
    .sort()
    .slice(0, deps.ahead);
  if (ready.length > 0) await mkdir(records, { recursive: true, mode: 0o700 });
  const others = ready.map(async (name) => {
    // With the launcher's check (cli/pgbp) of the very bytes the push read and stored.
    const outcome = await pushWal(join(pgWal, name), deps, { check: true });
    await writeFile(join(records, entryName(name, outcome.sha256, outcome.check)), '', { mode: 0o600 });
    return outcome;
  });
  const [own, ...rest] = await Promise.allSettled([pushWal(path, deps), ...others]);
  if (!own || own.status === 'rejected') throw own?.reason;
  // A store that failed a segment pushed ahead is reported by this call, the one that saw it fail.
  const degraded = new Map<string, DegradedStore>();
  for (const outcome of [own, ...rest]) {
    if (outcome.status !== 'fulfilled') continue;
    for (const d of outcome.value.degraded ?? []) if (!degraded.has(d.url)) degraded.set(d.url, d);
  }
  return {
    ...own.value,
    ...(degraded.size > 0 ? { degraded: [...degraded.values()] } : {}),
    pushedAhead: rest.filter((r) => r.status === 'fulfilled').length,
  };
}
