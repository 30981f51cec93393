/**
 * CloudWatch embedded metric format: one JSON line on stdout with an `_aws` key becomes a
 * metric in Lambda, with no API call and no client. Elsewhere it is a readable log line.
 */

export const METRIC_NAMESPACE = 'PgBackupPipeline';

export type MetricUnit = 'None' | 'Percent' | 'Bytes' | 'Count' | 'Seconds';

export interface Metric {
  readonly name: string;
  readonly value: number;
  readonly unit: MetricUnit;
}

/** One EMF document: the metrics under one set of dimensions. */
export function embeddedMetric(
  dimensions: Readonly<Record<string, string>>,
  metrics: readonly Metric[],
  at: Date,
  namespace: string = METRIC_NAMESPACE,
): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: at.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: namespace,
          Dimensions: [Object.keys(dimensions)],
          Metrics: metrics.map((m) => ({ Name: m.name, Unit: m.unit })),
        },
      ],
    },
    ...dimensions,
    ...Object.fromEntries(metrics.map((m) => [m.name, m.value])),
  };
}

export interface MetricsSink {
  emit(dimensions: Readonly<Record<string, string>>, metrics: readonly Metric[], at: Date): void;
}

/** Writes EMF lines (to stdout by default, where the Lambda agent picks them up). */
export function emfSink(write: (line: string) => void = (l) => process.stdout.write(l)): MetricsSink {
  return {
    emit(dimensions, metrics, at) {
      if (metrics.length === 0) return;
      write(`${JSON.stringify(embeddedMetric(dimensions, metrics, at))}\n`);
    },
  };
}
