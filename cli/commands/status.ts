import type { Command } from 'commander';
import { storeLag } from '../../lib/domain/store-roles.js';
import { formatBytes } from '../../lib/domain/units.js';
import type { ClusterStatus } from '../../lib/monitor/pitr-status.js';
import type { StoreStatus } from '../../lib/monitor/staleness.js';
import { type CliDeps, type ExitHolder, out } from '../context.js';

function age(hours: number | null): string {
  if (hours === null) return '-';
  return hours < 48 ? `${hours.toFixed(1)} h` : `${(hours / 24).toFixed(1)} d`;
}

/** A short span as people read it: seconds, minutes, then hours and days. */
function span(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return age(seconds / 3600);
}

export function registerStatus(program: Command, deps: CliDeps, exit: ExitHolder): void {
  program
    .command('status')
    .description(
      'Per database: newest backup, its age and size, tier counts, last restore check; exit 2 when any is stale',
    )
    .option('--store <url>', 'store URL (s3://bucket/prefix, file:///dir or file:dir), overrides the config')
    .option('--config <file>', 'stage config file')
    .option('--json', 'print the status as JSON')
    .action(async (opts: { store?: string; config?: string; json?: boolean }) => {
      const [
        { resolveConfig, resolveReadableStores },
        { clusterStatus, clusterWarnings },
        { storeStatus },
        { archiveLag },
      ] = await Promise.all([
        import('../resolve.js'),
        import('../../lib/monitor/pitr-status.js'),
        import('../../lib/monitor/staleness.js'),
        import('../../lib/monitor/archive-lag.js'),
      ]);
      const config = resolveConfig(deps, opts.config);
      // A store that cannot be opened or read (the NAS's directory gone, S3 not answering) is
      // reported, and the other shown.
      const { stores, unavailable } = await resolveReadableStores(deps, config, opts.store);
      const now = new Date();
      const read = await Promise.all(
        stores.map((s) =>
          storeStatus({ store: s.store, config, now }).then(
            (status) => ({ role: s.role, store: s.store, status }),
            (error: unknown) => {
              unavailable.push({
                role: s.role,
                url: s.store.url,
                reason: `unavailable: ${(error as Error).message}`,
              });
              return undefined;
            },
          ),
        ),
      );
      const readable = read.filter((r) => r !== undefined);
      if (readable.length === 0)
        throw new Error(unavailable.map((u) => `${u.role} store ${u.url}: ${u.reason}`).join('; '));
      for (const u of unavailable) {
        if (!opts.json)
          out(deps, `${u.role} store ${u.url}: UNAVAILABLE: ${u.reason.replace(/^unavailable: /, '')}`);
      }
      const statuses = readable.map((r) => r.status);
      const status = statuses[0] as (typeof statuses)[number];
      // The physical archive of each store: a store can hold WAL or base backups the other lacks.
      const clusters = await Promise.all(
        readable.map((r) => clusterStatus({ store: r.store, config, now, env: deps.env })),
      );
      const [cluster, secondCluster] = clusters;
      const warnings = [...status.warnings, ...clusterWarnings(cluster, config)];
      const second = statuses[1];
      const secondWarnings = second ? [...second.warnings, ...clusterWarnings(secondCluster, config)] : [];
      const lag = second ? storeLag(status.databases, second.databases) : [];
      const walLag =
        second && (cluster || secondCluster)
          ? archiveLag({
              cluster: config.wal.cluster,
              stores: readable.map((r, i) => ({ role: r.role, segments: clusters[i]?.segments ?? [] })),
              now,
              rpoMs: config.wal.rpo,
            })
          : [];
      const lagWarnings = walLag
        .filter((l) => l.overRpo)
        .map(
          (l) =>
            `cluster ${l.cluster}: the ${l.behind} store (${readable.find((r) => r.role === l.behind)?.store.url}) trails the ${l.ahead} by ${l.segments} WAL segment${l.segments === 1 ? '' : 's'} (from ${l.oldestMissing}, archived ${span(l.seconds)} ago; RPO ${span(config.wal.rpo / 1000)}): pgbp sync --cluster ${l.cluster}`,
        );
      const shown = (one: StoreStatus, c: ClusterStatus | undefined, w: readonly string[]) => {
        if (!c) return one;
        const { segments: _all, ...rest } = c;
        return { ...one, warnings: w, clusters: [rest] };
      };
      if (opts.json) {
        const one = shown(status, cluster, warnings);
        out(
          deps,
          JSON.stringify(
            second
              ? {
                  stores: [
                    { role: 'primary', ...one },
                    { role: 'secondary', ...shown(second, secondCluster, secondWarnings) },
                  ],
                  lag,
                  archiveLag: walLag,
                  warnings: lagWarnings,
                }
              : unavailable.length > 0
                ? { ...one, unavailable }
                : one,
          ),
        );
      } else {
        if (second || unavailable.length > 0) out(deps, `${readable[0]?.role} store:`);
        printStore(deps, status);
      }
      if (!opts.json) for (const w of warnings) out(deps, `  WARNING ${w}`);
      if (cluster && !opts.json) printCluster(deps, cluster);
      if (second && !opts.json) {
        out(deps, 'secondary store:');
        printStore(deps, second);
        for (const w of secondWarnings) out(deps, `  WARNING ${w}`);
        if (secondCluster) printCluster(deps, secondCluster);
        out(deps, 'lag between the stores:');
        for (const l of walLag) {
          out(
            deps,
            `  cluster ${l.cluster}: the ${l.behind} store lacks ${l.segments} WAL segment${l.segments === 1 ? '' : 's'} the ${l.ahead} holds (from ${l.oldestMissing}, archived ${span(l.seconds)} ago): pgbp sync --cluster ${l.cluster}`,
          );
        }
        if (walLag.length === 0 && (cluster || secondCluster))
          out(deps, `  cluster ${config.wal.cluster}: the same WAL segments`);
        for (const w of lagWarnings) out(deps, `  WARNING ${w}`);
        for (const l of lag) {
          const text =
            l.behind === null
              ? l.primaryNewest
                ? 'same newest backup'
                : 'no backup in either'
              : l.hours === null
                ? `the ${l.behind} store has no backup (the other has ${l.behind === 'primary' ? l.secondaryNewest : l.primaryNewest}): pgbp sync --database ${l.database}`
                : `the ${l.behind} store is ${age(l.hours)} behind (newest ${l.behind === 'primary' ? l.primaryNewest : l.secondaryNewest}): pgbp sync --database ${l.database}`;
          out(deps, `  ${l.database}: ${text}`);
        }
      }
      // Either store stale is stale: a NAS days behind holds no quick recovery.
      if (statuses.some((s) => s.anyStale) || unavailable.length > 0) exit.code = 2;
    });
}

/** A store's physical archive of the cluster: base backups, newest segment, window, drill, gaps. */
function printCluster(deps: CliDeps, cluster: ClusterStatus): void {
  const newest = cluster.newestBase
    ? `newest base backup ${cluster.newestBase.id} ${age(cluster.newestBase.ageHours)} old ${formatBytes(cluster.newestBase.sizeBytes)}`
    : 'no base backup';
  const segment = cluster.newestSegment
    ? `newest segment ${cluster.newestSegment.name} archived ${cluster.newestSegment.archivedAt}`
    : 'no WAL segment';
  const window = cluster.window
    ? `recoverable ${cluster.window.from} to ${cluster.window.to}`
    : 'nothing recoverable';
  const drill = cluster.lastDrill
    ? `last PITR drill ${cluster.lastDrill.passed ? 'passed' : 'FAILED'} at ${cluster.lastDrill.at} (RTO ${cluster.lastDrill.rtoSeconds?.toFixed(1) ?? '-'} s)`
    : 'never drilled';
  out(
    deps,
    `  cluster ${cluster.cluster}: ${newest}  ${segment}  ${window}  ${drill}${cluster.gap ? `  GAP: ${cluster.gap}` : ''}`,
  );
  for (const g of cluster.gaps) {
    out(
      deps,
      `  cluster ${cluster.cluster}: MISSING from the archive on timeline ${g.timeline}: ${g.from === g.to ? g.from : `${g.from}..${g.to}`} (${g.missing} segment${g.missing === 1 ? '' : 's'})`,
    );
  }
}

/** One store's block: its URL and free space, then a line per database. */
function printStore(deps: CliDeps, status: StoreStatus): void {
  const space = status.freeSpace
    ? ` (${(status.freeSpace.freeRatio * 100).toFixed(1)} % free${status.freeSpace.low ? ', LOW' : ''})`
    : '';
  out(deps, `${status.store}${space}`);
  if (status.databases.length === 0) out(deps, '  no databases configured or stored');
  for (const d of status.databases) {
    const state = d.stale ? (d.watched ? 'STALE' : 'stale, not watched') : 'ok';
    const newest = d.newest
      ? `${d.newest.id}  ${age(d.ageHours)} old  ${formatBytes(d.newest.sizeBytes)}`
      : 'no backup';
    const last = d.lastRestoreCheck;
    const check = last
      ? `checked ${last.backupId} at ${last.at}: ${last.passed === null ? 'report unreadable' : last.passed ? 'passed' : 'FAILED'}`
      : 'never checked';
    out(
      deps,
      `  ${d.database}: ${state}  ${newest}  daily ${d.counts.daily} / monthly ${d.counts.monthly} / yearly ${d.counts.yearly}  ${check}${d.debris ? `  debris ${d.debris}` : ''}${d.broken ? `  broken ${d.broken}` : ''}`,
    );
  }
}
