import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Builds dist/ from the current sources before any test runs, so every test that starts the
 * real `pgbp` (or the local runner's task processes) runs what is in the work tree, never a
 * bundle left by an earlier install.
 */
export async function setup(): Promise<void> {
  const root = resolve(import.meta.dirname, '../..');
  const { buildAll } = (await import(pathToFileURL(resolve(root, 'cli/bundle.mjs')).href)) as {
    buildAll: (root: string) => Promise<string>;
  };
  await buildAll(root);
}
