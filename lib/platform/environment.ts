/**
 * This process's environment, for the defaults of library functions whose callers may pass
 * their own (tests, the CLI's deps). Entrypoints and lib/config.ts read `process.env` directly;
 * the rest of lib/ reads it here or is given it, so the linter can keep it that way.
 */
export function processEnv(): NodeJS.ProcessEnv {
  return process.env;
}
