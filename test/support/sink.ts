import { PassThrough } from 'node:stream';

/** A writable that keeps what is written to it, for a task's stdout and stderr. */
export function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { stream, text: () => text };
}
