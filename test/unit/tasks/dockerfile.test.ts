import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dockerfile = readFileSync('tasks/Dockerfile', 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() && !l.trim().startsWith('#'));

describe('the task image Dockerfile', () => {
  it('pins its Node 24 base image to an exact version', () => {
    const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    expect(base).toMatch(/^node:24\.\d+\.\d+-[a-z]+-slim$/);
    const froms = instructions.filter((l) => l.startsWith('FROM'));
    expect(froms.length).toBeGreaterThan(0);
    for (const from of froms) expect(from).toMatch(/^FROM (--platform=\$BUILDPLATFORM )?\$\{NODE_IMAGE\}/);
  });

  it('builds the runtime stage for the target platform and refuses a base image of another architecture', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM'));
    // The last stage is the image: no --platform of its own, so buildx's --platform decides it.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own variable syntax
    expect(froms.at(-1)).toBe('FROM ${NODE_IMAGE}');
    expect(dockerfile).toMatch(/^ARG TARGETARCH$/m);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own variable syntax
    expect(dockerfile).toContain('"$(dpkg --print-architecture)" != "${TARGETARCH}"');
  });

  it('is built for the architecture the task definitions declare', () => {
    const settings = readFileSync('serverless.yml', 'utf8');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a serverless.yml variable
    const fromSettings = 'CpuArchitecture: ${self:custom.settings.task.cpuArchitecture}';
    const declared = settings.match(/CpuArchitecture: (.*)$/gm) ?? [];
    expect(declared.length).toBeGreaterThanOrEqual(2);
    expect(new Set(declared)).toEqual(new Set([fromSettings]));
    expect(dockerfile).toContain('docker buildx build --platform linux/arm64');
  });

  it('installs the PostgreSQL client tools of the major version given as a build argument, zstd and stdbuf', () => {
    expect(dockerfile).toMatch(/^ARG PG_MAJOR=\d+$/m);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own variable syntax
    expect(dockerfile).toContain('"postgresql-client-${PG_MAJOR}"');
    expect(dockerfile).toMatch(/pg_dump --version \| grep -q "PostgreSQL\) \$\{PG_MAJOR\}\\\."/);
    expect(dockerfile).toMatch(/install -y --no-install-recommends [^\n]*\bzstd\b/);
    // stdbuf, which gives pg_dump its 1 MiB output buffer, comes with coreutils.
    expect(dockerfile).toMatch(/install -y --no-install-recommends [^\n]*\bcoreutils\b/);
  });

  it('carries the PostgreSQL server of the same major, for the scratch server a drill restores into', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own variable syntax
    expect(dockerfile).toContain('"postgresql-${PG_MAJOR}"');
    expect(dockerfile).toMatch(/initdb" --version \| grep -q "PostgreSQL\) \$\{PG_MAJOR\}/);
    // No cluster of the package's own: the drill makes its own with initdb.
    expect(dockerfile).toContain('create_main_cluster = false');
  });

  it('runs as a non-root user', () => {
    const users = instructions.filter((l) => l.startsWith('USER '));
    expect(users.at(-1)).toBe('USER node');
  });

  it('starts an entrypoint that the build produces from sources that exist', () => {
    const cmd = instructions.filter((l) => l.startsWith('CMD')).at(-1);
    expect(cmd).toBe('CMD ["node", "dist/tasks/dump.mjs"]');
    // cli/bundle.mjs builds the task entries it names and the CLI, as `npm ci` does.
    const bundles = readFileSync('cli/bundle.mjs', 'utf8');
    for (const entry of [
      'tasks/dump.ts',
      'tasks/restore.ts',
      'tasks/base-backup.ts',
      'tasks/pitr-drill.ts',
    ]) {
      expect(bundles).toContain(`'${entry}'`);
      expect(existsSync(entry)).toBe(true);
    }
    expect(dockerfile).toContain('RUN node cli/bundle.mjs');
  });

  it('copies into the build stage every file that the build reads', () => {
    const copied = instructions
      .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const path of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'lib',
      'tasks',
      // the CLI's sources, and the handlers the local runner binds
      'cli',
      'functions',
    ]) {
      expect(copied).toContain(path);
    }
  });

  it('holds what a recovered server runs as its restore_command: pgbp wal-fetch, found from the drill task', async () => {
    // The runtime stage's files, laid out as the image has them (the build stage's dist/ is what
    // `npm ci` built here), then wal-fetch run from there as PostgreSQL runs it.
    const runtime = instructions.slice(instructions.findLastIndex((l) => l.startsWith('FROM')));
    const copies = runtime
      .filter((l) => l.startsWith('COPY'))
      .map((l) =>
        l
          .split(/\s+/)
          .filter((w) => !w.startsWith('--'))
          .slice(1),
      );
    expect(copies).toEqual(
      expect.arrayContaining([
        ['/app/dist', './dist'],
        ['cli/pgbp.cjs', './cli/pgbp.cjs'],
        ['cli/front.cjs', './cli/front.cjs'],
        ['cli/extra-ca.cjs', './cli/extra-ca.cjs'],
        ['cli/pgbp.mjs', './cli/pgbp.mjs'],
        ['cli/pgbp', './cli/pgbp'],
        ['statemachines', './statemachines'],
      ]),
    );
    const image = mkdtempSync(join(tmpdir(), 'pgbp-image-'));
    try {
      for (const [from, to] of copies as [string, string][]) {
        const source = from.startsWith('/app/') ? from.slice('/app/'.length) : from;
        cpSync(source, join(image, to), { recursive: true });
      }
      // The drill's restore_command names the install by its statemachines/ folder.
      expect(existsSync(join(image, 'dist/tasks/pitr-drill.mjs'))).toBe(true);
      expect(existsSync(join(image, 'statemachines/backup.asl.yml'))).toBe(true);
      const empty = mkdtempSync(join(tmpdir(), 'pgbp-empty-store-'));
      // The launcher, as restore_command names it, and the node it runs for the CLI.
      const fetched = spawnSync(
        join(image, 'cli/pgbp'),
        ['wal-fetch', '000000010000000000000001', join(empty, 'RECOVERYXLOG'), '--store', `file://${empty}`],
        { encoding: 'utf8', cwd: image, env: { ...process.env, PGBP_NODE: process.execPath } },
      );
      rmSync(empty, { recursive: true, force: true });
      // pgbp itself answered (127 would be a missing CLI): this store holds no archive, which
      // must stop a recovery (above 125), never end it as "not found".
      expect(fetched.stderr).toContain('WalArchiveUnavailableError: there is no WAL archive main');
      expect(fetched.status).toBeGreaterThan(125);
      expect(fetched.status).not.toBe(127);
    } finally {
      rmSync(image, { recursive: true, force: true });
    }
  });
});
