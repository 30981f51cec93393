import { spawnSync } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';

interface ProcessRow {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly command: string;
}

/** Every live process (zombies, already dead and waiting to be reaped, left out). */
export function processes(): ProcessRow[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,ppid=,pgid=,stat=,args='], { encoding: 'utf8' });
  return ps.stdout
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && !m[4]?.startsWith('Z'))
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), pgid: Number(m[3]), command: m[5] ?? '' }));
}

/** The live processes of a process group. */
export function groupMembers(pgid: number): ProcessRow[] {
  return processes().filter((p) => p.pgid === pgid);
}

/** A process and all its descendants, live ones only. */
export function treeOf(pid: number): ProcessRow[] {
  const all = processes();
  const found: ProcessRow[] = [];
  let frontier = all.filter((p) => p.pid === pid);
  while (frontier.length > 0) {
    found.push(...frontier);
    const parents = new Set(frontier.map((p) => p.pid));
    frontier = all.filter((p) => parents.has(p.ppid));
  }
  return found;
}

/** Live processes whose command line contains `marker` (a unique database or directory name). */
export function processesMentioning(marker: string): ProcessRow[] {
  return processes().filter((p) => p.command.includes(marker) && !p.command.startsWith('ps '));
}

/** Polls until `condition` holds; fails naming `what` if it has not after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await delay(25);
  }
}
