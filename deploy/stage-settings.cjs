// serverless.yml reads `${file(./deploy/stage-settings.cjs)}`: osls calls this function and
// uses what it returns. The settings are computed in TypeScript (stage-settings.ts) from the
// stage config, validated by the same schema as everywhere else.
'use strict';

const path = require('node:path');

module.exports = async ({ resolveVariable }) => {
  const stage = await resolveVariable('sls:stage');
  // tsx compiles the TypeScript on the fly (its CommonJS loader: osls loads this file with require).
  const { require: tsRequire } = require('tsx/cjs/api');
  const { stageSettings } = tsRequire('./stage-settings.ts', __filename);
  return stageSettings(stage, { root: path.resolve(__dirname, '..') });
};
