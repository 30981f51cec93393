// Bundles the Fargate entrypoints into single files for the container image (dist/tasks/*.mjs).
import { bundle } from '../cli/bundle.mjs';

await bundle({ entryPoints: ['tasks/dump.ts', 'tasks/restore.ts'], outdir: process.argv[2] ?? 'dist/tasks' });
