import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TarScanner } from '../../../lib/backup/tar-scan.js';

describe('following a tar stream', () => {
  it('keeps the members asked for, whatever the chunk boundaries, and sees the end', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgbp-tar-'));
    try {
      mkdirSync(join(dir, 'global'));
      writeFileSync(join(dir, 'big'), Buffer.alloc(70_001, 7));
      writeFileSync(join(dir, 'global', 'pg_control'), Buffer.from('control-bytes'));
      writeFileSync(join(dir, 'backup_label'), 'START TIMELINE: 1\n');
      writeFileSync(join(dir, 'empty'), '');
      const tar = execFileSync('tar', ['-c', '-C', dir, 'big', 'empty', 'global', 'backup_label']);
      for (const chunk of [1, 511, 512, 4096, tar.length]) {
        const scanner = new TarScanner(new Set(['backup_label', 'global/pg_control', 'empty']));
        for (let at = 0; at < tar.length; at += chunk) scanner.push(tar.subarray(at, at + chunk));
        expect(scanner.complete).toBe(true);
        expect(scanner.kept.get('backup_label')?.toString()).toBe('START TIMELINE: 1\n');
        expect(scanner.kept.get('global/pg_control')?.toString()).toBe('control-bytes');
        expect(scanner.kept.get('empty')?.length).toBe(0);
        expect(scanner.kept.has('big')).toBe(false);
      }
      const cut = new TarScanner(new Set());
      cut.push(tar.subarray(0, 5000));
      expect(cut.complete).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
