import { alertText } from '../domain/alert-texts.js';
import type { Alert } from '../domain/alerts.js';
import { AlertDeliveryError } from '../domain/errors.js';

/** Where alerts go: SNS, Slack, the console, or several of them. */
export interface Alerter {
  /** Delivers the alert; throws AlertDeliveryError when it could not be delivered anywhere it should go. */
  publish(alert: Alert): Promise<void>;
}

/** Alerts as readable text on a stream (stderr by default): the embedded default, and CloudWatch Logs in Lambda. */
export function consoleAlerter(write: (text: string) => void = (t) => process.stderr.write(t)): Alerter {
  return {
    async publish(alert) {
      write(`${alertText(alert)}\n\n`);
    },
  };
}

/**
 * Delivers to every target; one failing does not stop the others, and the first failure is
 * rethrown once all were tried, so an alert is never dropped silently.
 */
export function fanOutAlerter(targets: readonly Alerter[]): Alerter {
  return {
    async publish(alert) {
      const results = await Promise.allSettled(targets.map((t) => t.publish(alert)));
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
      if (failures.length === 0) return;
      const [first] = failures;
      if (failures.length === 1 && first instanceof AlertDeliveryError) throw first;
      throw new AlertDeliveryError(
        `alert ${alert.kind} could not be delivered to ${failures.length} of ${targets.length} targets: ${failures.map((f) => f.message).join('; ')}`,
        { cause: first },
      );
    },
  };
}
