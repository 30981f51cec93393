/**
 * SDK clients are built once per process, on first use. Each service has its own module here,
 * so that a process loads the SDK of the services it talks to and no other: the dump to S3
 * carries the S3 client alone, not those of Step Functions, SNS or Secrets Manager.
 * Endpoints come from the standard AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) variables,
 * which the SDK reads itself.
 */
export function once<T>(build: () => T): () => T {
  let value: T | undefined;
  return () => {
    value ??= build();
    return value;
  };
}
