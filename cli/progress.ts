import { formatBytes } from '../lib/domain/units.js';

/**
 * A one-line progress display on a terminal (bytes, rate, phase), redrawn at most a few times
 * a second; nothing at all when stderr is not a terminal or output is JSON.
 */
export function progressLine(stream: NodeJS.WritableStream & { isTTY?: boolean }, enabled: boolean) {
  const started = Date.now();
  let last = 0;
  let phase = '';
  const active = enabled && Boolean(stream.isTTY);
  return {
    phase(name: string) {
      phase = name;
    },
    update(bytes: number) {
      if (!active) return;
      const now = Date.now();
      if (now - last < 250) return;
      last = now;
      const seconds = (now - started) / 1000;
      const rate = seconds > 0 ? formatBytes(bytes / seconds) : '0 B';
      stream.write(
        `\r\x1b[2K${phase ? `${phase}: ` : ''}${formatBytes(bytes)}  ${rate}/s  ${seconds.toFixed(0)} s`,
      );
    },
    done() {
      if (active && last > 0) stream.write('\r\x1b[2K');
    },
  };
}
