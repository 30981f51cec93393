import { Command, CommanderError } from 'commander';
import { redact } from '../lib/domain/redact.js';
import type { Interrupts } from '../lib/platform/interrupts.js';
import packageJson from '../package.json' with { type: 'json' };
import { type CliDeps, type ExitHolder, walCommandFailed } from './context.js';

const defaultDeps: CliDeps = {
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
};

type Register = (program: Command, deps: CliDeps, exit: ExitHolder) => void;

/**
 * The commands, each loaded only when it runs (or for help): a dump should not carry the
 * modules of every other command in memory.
 */
const commands: Record<string, () => Promise<Register>> = {
  dump: async () => (await import('./commands/dump.js')).registerDump,
  list: async () => (await import('./commands/list.js')).registerList,
  retention: async () => (await import('./commands/retention.js')).registerRetention,
  status: async () => (await import('./commands/status.js')).registerStatus,
  verify: async () => (await import('./commands/verify.js')).registerVerify,
  restore: async () => (await import('./commands/restore.js')).registerRestore,
  thaw: async () => (await import('./commands/thaw.js')).registerThaw,
  backup: async () => (await import('./commands/backup.js')).registerBackup,
  drill: async () => (await import('./commands/drill.js')).registerDrill,
  'wal-push': async () => (await import('./commands/wal.js')).registerWal,
  check: async () => (await import('./commands/check.js')).registerCheck,
  basebackup: async () => (await import('./commands/basebackup.js')).registerBaseBackup,
  recover: async () => (await import('./commands/recover.js')).registerRecover,
  sync: async () => (await import('./commands/sync.js')).registerSync,
};

export async function buildProgram(deps: CliDeps, exit: ExitHolder, only?: string): Promise<Command> {
  const program = new Command('pgbp')
    .description('Backups of PostgreSQL that prove they restore: dump, list, verify, restore.')
    .version(packageJson.version, '-V, --version', 'print the version of pgbp')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => deps.stdout.write(s),
      writeErr: (s) => deps.stderr.write(s),
    });
  const version = only === '-V' || only === '--version';
  const names = only && only in commands ? [only] : version ? [] : Object.keys(commands);
  for (const name of names) (await commands[name]?.())?.(program, deps, exit);
  return program;
}

/** What a command line does, for the line that says it was interrupted: `dump of app`, `backup`. */
function whatRuns(argv: readonly string[]): string {
  const at = argv.indexOf('--database');
  const database = at >= 0 ? argv[at + 1] : argv.find((a) => a.startsWith('--database='))?.slice(11);
  return `${argv[0] ?? 'pgbp'}${database ? ` of ${database}` : ''}`;
}

/**
 * Runs the CLI; returns the process exit code. Errors become one line on stderr, secrets removed.
 * Interrupted (SIGTERM, SIGINT, SIGHUP), the command stops its processes and removes what it had
 * begun, writes nothing more, and this returns 128 + the signal after one line saying so.
 */
export async function main(argv: readonly string[], deps: CliDeps = defaultDeps): Promise<number> {
  // The commands PostgreSQL runs once per WAL file: parsed without commander, and with nothing
  // loaded that they do not use (cli/wal-main.ts; cli/pgbp.cjs runs them from their own bundle).
  if (argv[0]?.startsWith('wal-')) {
    let code: number | undefined;
    try {
      code = await (await import('./wal-main.js')).runWalCommand(argv, deps);
    } catch (error) {
      return walCommandFailed(argv, error, deps);
    }
    if (code !== undefined) return code;
  }
  const exit: ExitHolder = { code: 0 };
  // Listened for from just before an action runs: help, a version or a usage error starts no
  // process to stop, and the module that stops them is work, not the front (cli/bundle.mjs).
  let interrupts: Interrupts | undefined;
  const withSignal: { -readonly [K in keyof CliDeps]: CliDeps[K] } = { ...deps };
  try {
    const program = await buildProgram(withSignal, exit, argv[0]);
    program.hook('preAction', async () => {
      const { listenForInterrupts } = await import('../lib/platform/interrupts.js');
      interrupts = listenForInterrupts();
      withSignal.signal = interrupts.signal;
    });
    await program.parseAsync([...argv], { from: 'user' });
    return exit.code;
  } catch (error) {
    const signal = interrupts?.received();
    if (signal) {
      const { exitCodeFor } = await import('../lib/platform/interrupts.js');
      deps.stderr.write(
        `pgbp: ${whatRuns(argv)} interrupted by ${signal}: its processes were stopped and what it had begun was removed\n`,
      );
      return exitCodeFor(signal);
    }
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 64;
    const e = error as Error;
    const secrets = [deps.env.PGPASSWORD];
    deps.stderr.write(`pgbp: ${e.name}: ${redact(e.message, secrets).split('\n').join(' | ')}\n`);
    return 1;
  } finally {
    interrupts?.dispose();
  }
}
