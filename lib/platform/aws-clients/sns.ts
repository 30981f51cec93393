import { SNSClient } from '@aws-sdk/client-sns';
import { once } from './once.js';

export const snsClient = /* @__PURE__ */ once(() => new SNSClient({}));
