import { rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeFile } from './spool.js';

/**
 * "Not archived" records: what the prefetcher found the archive lacks, of the names recovery is
 * about to ask for (the segment past the archive's end, the history files of the timeline and
 * of the next one). Recovery asks for each of them at least once and Node would start to say
 * "not archived" each time; the launcher (cli/pgbp) answers exit 1 from a record instead, when it
 * is fresh (at most {@link ABSENT_FRESH_S} seconds old) and only once (it renames it to
 * `.NAME.asked`). A record says only what the archive answered: a lookup that failed removes it.
 *
 * A record is `.NAME.absent` in the spool's folder, holding the epoch seconds of the lookup's
 * start (what `date +%s` compares with), written whole or not at all.
 */
export const ABSENT_FRESH_S = 2;

export function absentRecord(dir: string, name: string): string {
  return join(dir, `.${name}.absent`);
}

/** Where the launcher moves a record it answered from. */
export function askedRecord(dir: string, name: string): string {
  return join(dir, `.${name}.asked`);
}

/** Records that the archive, asked at `askedAtMs`, does not hold `name`. */
export async function writeAbsent(dir: string, name: string, askedAtMs: number): Promise<void> {
  const temp = join(dir, `.${name}.absent.${process.pid}`);
  try {
    await writeFile(temp, `${Math.floor(askedAtMs / 1000)}\n`, { mode: 0o600 });
    await rename(temp, absentRecord(dir, name));
  } catch {
    await unlink(temp).catch(() => {});
  }
}

/** Removes the record of `name` (the archive holds it now, or could not be asked). */
export function dropAbsent(dir: string, name: string): void {
  removeFile(absentRecord(dir, name));
}

/** Removes `name`'s record and the trace of its having been asked. */
export function forgetAbsent(dir: string, name: string): void {
  dropAbsent(dir, name);
  removeFile(askedRecord(dir, name));
}
