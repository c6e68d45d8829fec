/**
 * The one table from the packages' errors to API answers (src/domain-errors.ts), and the handler using it:
 * a route that lets a package's error through answers with the table's status and body, never a 500.
 */
import { RepositoryLocationError } from '@vaultline/appliance';
import { BrowseError, FlrSessionError, FlrUnavailableError } from '@vaultline/flr';
import { RemoteProblem } from '@vaultline/remote';
import { describe, expect, it } from 'vitest';
import { apiErrorOf, DOMAIN_ERRORS } from '../src/domain-errors.ts';
import { AppError } from '../src/errors.ts';
import { VCenterProblem } from '../src/services/vcenter-connector.ts';

const answer = (err: unknown) => {
  const e = apiErrorOf(err);
  return e && { status: e.status, code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) };
};

describe('domain errors → API answers', () => {
  it('answers each listed error with its status and code, keeping the message', () => {
    expect(answer(new VCenterProblem('cannot reach vc.example:443: connection refused', 'unreachable'))).toEqual({ status: 400, code: 'bad_request', message: 'cannot reach vc.example:443: connection refused' });
    expect(answer(new RepositoryLocationError('/proc/x is under /proc'))).toMatchObject({ status: 400, code: 'bad_request' });
    expect(answer(new FlrUnavailableError(['its helper is not running']))).toMatchObject({ status: 503, code: 'service_unavailable', message: 'file-level restore is not available: its helper is not running' });
    expect(answer(new FlrSessionError('rate_limited', 'too many sessions'))).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(answer(new BrowseError('not_found', 'no such file'))).toMatchObject({ status: 404, code: 'not_found' });
  });

  it('names the form field for remote-host problems; a changed host key or a missing install conflicts', () => {
    expect(answer(new RemoteProblem('auth', 'the key was refused'))).toEqual({ status: 400, code: 'bad_request', message: 'the key was refused', details: [{ path: 'privateKey', message: 'auth' }] });
    expect(answer(new RemoteProblem('host_key', 'another host key'))).toMatchObject({ status: 409, code: 'conflict', details: [{ path: 'hostKeySha256', message: 'host_key' }] });
    expect(answer(new RemoteProblem('not_installed', 'nothing installed'))).toMatchObject({ status: 409, details: [{ path: 'id', message: 'not_installed' }] });
    expect(answer(new RemoteProblem('space', 'no room'))).toMatchObject({ status: 400, details: [{ path: 'installDir', message: 'space' }] });
  });

  it('passes AppErrors through and leaves anything else to the 500 path', () => {
    const own = new AppError('conflict', 'mine');
    expect(apiErrorOf(own)).toBe(own);
    expect(apiErrorOf(new Error('a bug'))).toBeNull();
    expect(apiErrorOf(new TypeError('a bug'))).toBeNull();
    expect(apiErrorOf('not an error')).toBeNull();
    // Every rule is reachable: no class listed twice, none shadowed by an earlier superclass.
    const types = DOMAIN_ERRORS.map((r) => r.type);
    expect(new Set(types).size).toBe(types.length);
    for (const [i, t] of types.entries()) expect(types.slice(0, i).some((earlier) => t.prototype instanceof earlier)).toBe(false);
  });
});
