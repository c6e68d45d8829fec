/**
 * The errors the Director's packages throw, and the API answer each one gets: one table, read by the API's
 * error handler (app.ts), so a route lets a package's error through instead of mapping it itself. A route
 * still wraps an error when it can say more (which location, which job), and then throws an AppError.
 * Anything not in the table is a 500 (logged, never shown).
 */
import { RepositoryLocationError } from '@vaultline/appliance';
import { BrowseError, FlrSessionError, FlrUnavailableError } from '@vaultline/flr';
import { RemoteProblem } from '@vaultline/remote';
import { AppError } from './errors.ts';
import { VCenterProblem } from './services/vcenter-connector.ts';

/** The request field an admin has to change for each kind of remote-host problem (for the console's form). */
export const REMOTE_FIELD: Record<string, string> = {
  unreachable: 'host',
  auth: 'privateKey',
  credentials: 'privateKey',
  host_key: 'hostKeySha256',
  platform: 'host',
  space: 'installDir',
  permission: 'installDir',
  install: 'host',
  not_installed: 'id',
};

interface Rule<E extends Error> {
  type: abstract new (...args: never[]) => E;
  answer(err: E): AppError;
}
const rule = <E extends Error>(type: Rule<E>['type'], answer: (err: E) => AppError): Rule<Error> => ({ type, answer: answer as (err: Error) => AppError });

/** In order: the first class the error is an instance of answers. */
export const DOMAIN_ERRORS: Rule<Error>[] = [
  // A vCenter that cannot be reached, refuses the login, or presents another certificate: the request's fault.
  rule(VCenterProblem, (e) => new AppError('bad_request', e.message)),
  // An SSH host for a remote Transporter: a changed host key or a Transporter not installed there conflicts with
  // what the Director recorded; the rest is something the admin corrects in the form (the field named).
  rule(RemoteProblem, (e) => new AppError(e.kind === 'host_key' || e.kind === 'not_installed' ? 'conflict' : 'bad_request', e.message, [{ path: REMOTE_FIELD[e.kind] ?? 'host', message: e.kind }])),
  rule(RepositoryLocationError, (e) => new AppError('bad_request', e.message)),
  // File-level restore: its helper not running is the appliance's state, not the request's.
  rule(FlrUnavailableError, (e) => new AppError('service_unavailable', e.message)),
  rule(FlrSessionError, (e) => new AppError(e.code, e.message)),
  rule(BrowseError, (e) => new AppError(e.code, e.message)),
];

/** The API error for `err`: itself when it is one, the table's answer when its class is listed, else null. */
export function apiErrorOf(err: unknown): AppError | null {
  if (err instanceof AppError) return err;
  if (!(err instanceof Error)) return null;
  const r = DOMAIN_ERRORS.find((x) => err instanceof x.type);
  return r ? r.answer(err) : null;
}
