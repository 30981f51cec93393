// Bundles the Fargate entrypoints into single files for the container image (dist/tasks/*.mjs).
import { bundle, TASK_ENTRIES } from '../cli/bundle.mjs';

await bundle({ entryPoints: TASK_ENTRIES, outdir: process.argv[2] ?? 'dist/tasks' });
