import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The Fargate entrypoints (tasks/dump.ts, tasks/restore.ts) bundled for `node` the way
 * tasks/build.mjs bundles them for the image, so a local run starts the very program a
 * container runs. Rebuilt when a source is newer than the bundle, like cli/pgbp.mjs does for
 * the CLI; each build goes to its own folder named in `.build/tasks-current`, so concurrent runs
 * never see a half-written bundle.
 */

const TASK_ENTRIES = ['tasks/dump.ts', 'tasks/restore.ts'];
const SOURCES = ['tasks', 'lib', 'package-lock.json'];

function newest(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let latest = 0;
  for (const name of readdirSync(path)) latest = Math.max(latest, newest(join(path, name)));
  return latest;
}

function current(root: string, pointer: string): string | undefined {
  if (!existsSync(pointer)) return undefined;
  const dir = join(root, '.build', readFileSync(pointer, 'utf8').trim());
  if (!TASK_ENTRIES.every((e) => existsSync(join(dir, e.replace(/^tasks\/(.*)\.ts$/, '$1.mjs'))))) {
    return undefined;
  }
  const sources = SOURCES.map((p) => join(root, p))
    .filter((p) => existsSync(p))
    .map(newest);
  return statSync(pointer).mtimeMs >= Math.max(...sources) ? dir : undefined;
}

type Bundle = (options: {
  entryPoints: string[];
  outdir: string;
  sourcemap?: boolean | 'linked';
}) => Promise<void>;

/** The directory holding dump.mjs and restore.mjs, built first when missing or stale. */
export async function taskBundleDir(root: string): Promise<string> {
  const buildRoot = join(root, '.build');
  const pointer = join(buildRoot, 'tasks-current');
  const found = current(root, pointer);
  if (found) return found;
  // Loaded from the checkout at run time: the CLI is itself a bundle, and esbuild must not be bundled.
  const { bundle } = (await import(pathToFileURL(join(root, 'cli/bundle.mjs')).href)) as { bundle: Bundle };
  const name = `t-${Date.now()}-${process.pid}`;
  mkdirSync(buildRoot, { recursive: true });
  await bundle({
    entryPoints: TASK_ENTRIES.map((e) => join(root, e)),
    outdir: join(buildRoot, name),
    sourcemap: false,
  });
  const temp = `${pointer}.${process.pid}`;
  writeFileSync(temp, name);
  renameSync(temp, pointer);
  // Older builds are kept a minute for runs that may still be starting them.
  for (const old of readdirSync(buildRoot)) {
    const path = join(buildRoot, old);
    if (old.startsWith('t-') && old !== name && Date.now() - statSync(path).mtimeMs > 60_000) {
      rmSync(path, { recursive: true, force: true });
    }
  }
  return join(buildRoot, name);
}
