import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The directory holding the Fargate entrypoints (tasks/dump.ts, tasks/restore.ts) as the
 * install built them (cli/bundle.mjs, the same bundles as the image's), so a local run starts
 * the very program a container runs and writes nothing into the install.
 */
export async function taskBundleDir(root: string): Promise<string> {
  const dir = join(root, 'dist', 'tasks');
  for (const file of ['dump.mjs', 'restore.mjs']) {
    if (!existsSync(join(dir, file))) {
      throw new Error(`${join(dir, file)} is missing: run \`npm ci\` (or \`npm run build\`) in ${root}`);
    }
  }
  return dir;
}
