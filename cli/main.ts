import { Command, CommanderError } from 'commander';
import { redact } from '../lib/domain/redact.js';
import { registerDump } from './commands/dump.js';
import { registerList } from './commands/list.js';
import type { CliDeps } from './context.js';

const defaultDeps: CliDeps = {
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
};

/** Each command registers itself; a command sets `exitCode` on the holder it is given. */
export interface ExitHolder {
  code: number;
}

export function buildProgram(deps: CliDeps, exit: ExitHolder): Command {
  const program = new Command('pgbp')
    .description('Backups of PostgreSQL that prove they restore: dump, list, verify, restore.')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => deps.stdout.write(s),
      writeErr: (s) => deps.stderr.write(s),
    });
  registerDump(program, deps, exit);
  registerList(program, deps, exit);
  return program;
}

/** Runs the CLI; returns the process exit code. Errors become one line on stderr, secrets removed. */
export async function main(argv: readonly string[], deps: CliDeps = defaultDeps): Promise<number> {
  const exit: ExitHolder = { code: 0 };
  const program = buildProgram(deps, exit);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exit.code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 64;
    const e = error as Error;
    const secrets = [deps.env.PGPASSWORD];
    deps.stderr.write(`pgbp: ${e.name}: ${redact(e.message, secrets).split('\n').join(' | ')}\n`);
    return 1;
  }
}
