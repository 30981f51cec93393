import { describe, expect, it } from 'vitest';
import { VersionMismatchError } from '../../../lib/domain/errors.js';
import {
  parseToolVersion,
  parseVersion,
  requireToolAtLeastServer,
  serverVersionOf,
} from '../../../lib/postgres/versions.js';

describe('PostgreSQL versions', () => {
  it('gives a pre-10 server the same two-part major from every source', () => {
    expect(parseToolVersion('pg_dump (PostgreSQL) 9.6.24')).toEqual({ text: '9.6.24', major: 9.6 });
    expect(serverVersionOf('9.6.24', '90624')).toEqual({ text: '9.6.24', major: 9.6 });
    expect(parseVersion('9.6.24')?.major).toBe(9.6);
  });

  it('reads 10 as the first one-part major', () => {
    expect(parseToolVersion('pg_restore (PostgreSQL) 10.23')).toEqual({ text: '10.23', major: 10 });
    expect(serverVersionOf('10.23', '100023')).toEqual({ text: '10.23', major: 10 });
    expect(parseVersion('10')?.major).toBe(10);
  });

  it('reads 15 with a vendor suffix', () => {
    expect(parseToolVersion('pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)')).toEqual({
      text: '15.20',
      major: 15,
    });
    expect(serverVersionOf('15.20 (Debian 15.20-0+deb12u1)', '150020')).toEqual({ text: '15.20', major: 15 });
  });

  it('gives a 17 beta the major of its release', () => {
    expect(parseToolVersion('pg_dump (PostgreSQL) 17beta1')).toEqual({ text: '17beta1', major: 17 });
    expect(serverVersionOf('17beta1', '170000')).toEqual({ text: '17beta1', major: 17 });
  });

  it('refuses a tool older than the server, 9.6 included', () => {
    const tool = serverVersionOf('9.6.24', '90624');
    const server = serverVersionOf('10.23', '100023');
    expect(() => requireToolAtLeastServer('pg_dump', tool, server)).toThrow(VersionMismatchError);
    expect(() => requireToolAtLeastServer('pg_dump', server, tool)).not.toThrow();
  });

  it('says no version for text that is none', () => {
    expect(parseToolVersion('command not found')).toBeUndefined();
    expect(parseVersion('devel')).toBeUndefined();
  });
});
