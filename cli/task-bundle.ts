import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The Fargate entrypoints (tasks/dump.ts, tasks/restore.ts) bundled for `node` the way
 * tasks/build.mjs bundles them for the image, so a local run starts the very program a
 * container runs, kept fresh by the same rule as the CLI's own bundle (cli/bundle.mjs).
 */

const TASK_ENTRIES = ['tasks/dump.ts', 'tasks/restore.ts'];

type FreshBundle = (options: {
  root: string;
  name: string;
  entryPoints: string[];
  sources: string[];
}) => Promise<string>;

/** The directory holding dump.mjs and restore.mjs, built first when missing or stale. */
export async function taskBundleDir(root: string): Promise<string> {
  // Loaded from the checkout at run time: the CLI is itself a bundle, and esbuild must not be bundled.
  const { freshBundle } = (await import(pathToFileURL(join(root, 'cli/bundle.mjs')).href)) as {
    freshBundle: FreshBundle;
  };
  return freshBundle({
    root,
    name: 'tasks',
    entryPoints: TASK_ENTRIES,
    sources: ['tasks', 'lib', 'package-lock.json'],
  });
}
