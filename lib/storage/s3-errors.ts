/** What S3 answers, as this store reads it. */

export function tagging(tags: Readonly<Record<string, string>> | undefined): string | undefined {
  if (!tags || Object.keys(tags).length === 0) return undefined;
  return new URLSearchParams(tags).toString();
}

export function errorName(error: unknown): string {
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return e.name ?? e.Code ?? '';
}

export function isPreconditionFailed(error: unknown): boolean {
  const e = error as { $metadata?: { httpStatusCode?: number } };
  return errorName(error) === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 412;
}

export function isNotFound(error: unknown): boolean {
  const e = error as { $metadata?: { httpStatusCode?: number } };
  const name = errorName(error);
  return name === 'NotFound' || name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}
