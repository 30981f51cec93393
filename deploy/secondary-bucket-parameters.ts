/**
 * `npx tsx deploy/secondary-bucket-parameters.ts <stage>`: the `--parameter-overrides` of
 * deploy/secondary-bucket.yml for a stage, as `Key=Value` words, from the stage config (the
 * second bucket's name and key alias, its retention's lifecycle days, the stage's Object Lock).
 * Exits 2 with the config's error when the stage has no second bucket or cannot deploy one.
 */
import { resolve } from 'node:path';
import { stageSettings } from './stage-settings.js';

const stage = process.argv[2] ?? '';
try {
  const { secondary } = stageSettings(stage, { root: resolve(import.meta.dirname, '..') });
  if (!secondary) throw new Error(`config/${stage}.yml: stores.secondary: the stage has no second bucket`);
  process.stdout.write(
    `${Object.entries(secondary.parameters)
      .map(([key, value]) => `${key}=${value}`)
      .join(' ')}\n`,
  );
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exitCode = 2;
}
