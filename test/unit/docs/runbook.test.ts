import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRestoreRequest } from '../../../lib/restore/request.js';
import { projectRoot } from '../../../lib/state-machines.js';

/** The state machine inputs docs/RUNBOOK.md tells an operator to paste. */
const inputs = [
  ...readFileSync(join(projectRoot(), 'docs/RUNBOOK.md'), 'utf8').matchAll(/```json\n([\s\S]*?)```/g),
].map((m) => JSON.parse(m[1] as string) as Record<string, unknown>);

describe('docs/RUNBOOK.md', () => {
  it('gives inputs for every machine', () => {
    expect(inputs.some((i) => 'targetDatabase' in i)).toBe(true);
    expect(inputs).toContainEqual({});
    expect(inputs.some((i) => Array.isArray(i.databases))).toBe(true);
  });

  it('gives restore inputs the restore machine accepts', () => {
    for (const input of inputs.filter((i) => 'targetDatabase' in i)) {
      expect(() => parseRestoreRequest(input), JSON.stringify(input)).not.toThrow();
    }
  });

  it('gives backup and drill inputs that name nothing but databases', () => {
    for (const input of inputs.filter((i) => !('targetDatabase' in i))) {
      expect(Object.keys(input).filter((k) => k !== 'databases')).toEqual([]);
    }
  });
});
