import { SFNClient } from '@aws-sdk/client-sfn';
import { once } from './once.js';

export const sfnClient = /* @__PURE__ */ once(() => new SFNClient({}));
const sfnByRegion = new Map<string, SFNClient>();
/** A Step Functions client for a stage's region (the CLI starts and follows executions there), one per region. */
export function sfnClientIn(region: string): SFNClient {
  let client = sfnByRegion.get(region);
  if (!client) {
    client = new SFNClient({ region });
    sfnByRegion.set(region, client);
  }
  return client;
}
