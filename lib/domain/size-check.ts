/**
 * Size verdicts for a new backup: an empty dump is always an error; outside the configured
 * absolute range is an error; far from the recent baseline (median of the last good backups)
 * is a warning worth a look, since a table may have been emptied or a wrong database dumped.
 */
import { formatBytes } from './units.js';

export interface SizeRules {
  readonly minBytes?: number;
  readonly maxBytes?: number;
  /** How many previous good backups form the baseline. */
  readonly baselineCount: number;
  /** Warn below this fraction of the baseline median. */
  readonly warnBelowRatio: number;
  /** Warn above this multiple of the baseline median. */
  readonly warnAboveRatio: number;
  /** At or below this many bytes a dump is empty. */
  readonly emptyBytes: number;
}

export type SizeStatus = 'ok' | 'warning' | 'error';

export interface SizeBaseline {
  readonly count: number;
  readonly medianBytes: number;
  readonly lowBytes: number;
  readonly highBytes: number;
}

export interface SizeVerdict {
  readonly status: SizeStatus;
  readonly sizeBytes: number;
  /** What is wrong, with the numbers; empty when ok. */
  readonly reasons: readonly string[];
  readonly range: {
    readonly minBytes: number | null;
    readonly maxBytes: number | null;
    readonly emptyBytes: number;
  };
  /** null when the database has no earlier good backup: only the absolute range applies. */
  readonly baseline: SizeBaseline | null;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function percent(ratio: number): string {
  return `${Math.round(ratio * 100)} %`;
}

/**
 * Judges `sizeBytes` against the rules and the sizes of earlier good backups (newest first;
 * only the first `baselineCount` count).
 */
export function judgeSize(sizeBytes: number, history: readonly number[], rules: SizeRules): SizeVerdict {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (sizeBytes <= rules.emptyBytes) {
    errors.push(
      `the dump is ${formatBytes(sizeBytes)}, at or below ${formatBytes(rules.emptyBytes)}: empty or near-empty`,
    );
  }
  if (rules.minBytes !== undefined && sizeBytes < rules.minBytes) {
    errors.push(
      `the dump is ${formatBytes(sizeBytes)}, below the configured minimum of ${formatBytes(rules.minBytes)}`,
    );
  }
  if (rules.maxBytes !== undefined && sizeBytes > rules.maxBytes) {
    errors.push(
      `the dump is ${formatBytes(sizeBytes)}, above the configured maximum of ${formatBytes(rules.maxBytes)}`,
    );
  }
  const recent = history.slice(0, rules.baselineCount);
  let baseline: SizeBaseline | null = null;
  if (recent.length > 0) {
    const m = median(recent);
    baseline = {
      count: recent.length,
      medianBytes: m,
      lowBytes: m * rules.warnBelowRatio,
      highBytes: m * rules.warnAboveRatio,
    };
    const of = `the median of the last ${recent.length} good backup${recent.length === 1 ? '' : 's'} (${formatBytes(m)})`;
    if (sizeBytes < baseline.lowBytes) {
      warnings.push(
        `the dump is ${formatBytes(sizeBytes)}, ${percent(m > 0 ? sizeBytes / m : 0)} of ${of}; below the ${percent(rules.warnBelowRatio)} warning line`,
      );
    } else if (sizeBytes > baseline.highBytes) {
      warnings.push(
        `the dump is ${formatBytes(sizeBytes)}, ${percent(m > 0 ? sizeBytes / m : 0)} of ${of}; above the ${percent(rules.warnAboveRatio)} warning line`,
      );
    }
  }
  return {
    status: errors.length > 0 ? 'error' : warnings.length > 0 ? 'warning' : 'ok',
    sizeBytes,
    reasons: [...errors, ...warnings],
    range: {
      minBytes: rules.minBytes ?? null,
      maxBytes: rules.maxBytes ?? null,
      emptyBytes: rules.emptyBytes,
    },
    baseline,
  };
}
