#!/usr/bin/env node
// `node cli/pgbp.mjs …`, as earlier installs and their archive_command and restore_command were
// written: the same command as cli/pgbp.cjs, which the `pgbp` bin runs and which starts faster.
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./pgbp.cjs');
