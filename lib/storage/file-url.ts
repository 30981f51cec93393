import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Why `url` is not a file store URL this project accepts, or undefined when it is one. RFC 8089
 * names the host after `file://`: `file://tmp/x` is the directory /x on a host called `tmp`,
 * never ./tmp/x, so a host other than `localhost` is refused rather than guessed at.
 */
export function fileStoreUrlProblem(url: string): string | undefined {
  if (!url.startsWith('file:')) return 'is not a file: URL';
  if (!url.startsWith('file://')) return url.length > 'file:'.length ? undefined : 'names no directory';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a valid URL';
  }
  if (parsed.host !== '' && parsed.host !== 'localhost') {
    const rest = url.slice('file://'.length);
    return `a file: URL's host must be empty or localhost, not ${JSON.stringify(parsed.host)}; write file:///${rest} for the absolute path /${rest}, or file:${rest} for a directory relative to the working directory`;
  }
  if (parsed.search || parsed.hash) return 'has a query or a fragment, which a directory does not';
  return undefined;
}

/**
 * The directory a file store URL names: `file:///dir` or `file://localhost/dir` (absolute), or
 * `file:dir` and `file:./dir` (relative to `cwd`). Throws RangeError for anything else.
 */
export function fileStoreDirectory(url: string, cwd: string = process.cwd()): string {
  const problem = fileStoreUrlProblem(url);
  if (problem) throw new RangeError(`${url}: ${problem}`);
  if (url.startsWith('file://')) return fileURLToPath(url.replace(/^file:\/\/localhost\//, 'file:///'));
  return resolve(cwd, url.slice('file:'.length));
}
