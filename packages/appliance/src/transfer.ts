/**
 * Repositories of kind `transporter` (issue #17): `transporter://<transporter id>/<name>` is the
 * repository `name` a Transporter serves from a folder of its own (VAULTLINE_SERVE_REPOSITORIES). This
 * process opens it over mutual TLS with its own certificate from the Transporter CA, pinning the
 * certificate the Director issued the serving Transporter; the repository's keys stay on this side.
 *
 * The Director and each Transporter set their transfer context once at start (useTransferContext):
 * every place that opens a repository (backups, restores, copies, maintenance, the API) then reaches
 * such repositories with it, without each of them carrying the identity along.
 */
import type { Db } from '@vaultline/db';
import { PinMismatchError } from '@vaultline/tls';
import { REPOSITORY_NAME, TransferError, TransporterBackend, UntrustedServerError } from '@vaultline/transfer';
import { RepositoryLocationError } from './location-error.ts';

export interface TransferIdentity {
  /** `director`, or the Transporter's id: what its certificate names. */
  id: string;
  certPem: string;
  keyPem: string;
}

export interface TransferContext {
  db: Db;
  /** This process's certificate and key; null while the Director has not signed its request yet. */
  identity(): TransferIdentity | null;
}

let context: TransferContext | null = null;

/** Sets (or, with null, clears) the identity this process opens `transporter://` repositories with. */
export function useTransferContext(ctx: TransferContext | null): void {
  context = ctx;
}

/** A repository name a Transporter may serve (the server's own rule). */
export const SERVED_NAME = REPOSITORY_NAME;

export function transporterLocation(transporterId: string, name: string): string {
  return `transporter://${transporterId}/${name}`;
}

export function parseTransporterLocation(location: string): { transporterId: string; name: string } {
  const m = /^transporter:\/\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})\/([^/]+)$/.exec(location);
  if (!m || !SERVED_NAME.test(m[2]!)) throw new RepositoryLocationError(`${location} is not a transporter://<transporter id>/<repository name> location`);
  return { transporterId: m[1]!, name: m[2]! };
}

/** `host:port` or `[v6]:port` → its parts. */
export function parseServeAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`${address} is not host:port`);
  return { host: m[1] ?? m[2]!, port };
}

/** The serving Transporter cannot be used, or refused us; the message names it and what to do. */
export class TransferPeerError extends Error {
  override name = 'TransferPeerError';
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * The storage of a `transporter://` repository, connected and checked: the serving Transporter is
 * registered, serves that name, answers at its recorded address with the certificate the Director
 * issued it, and lets this process in. Otherwise a TransferPeerError saying which.
 */
export async function transporterBackend(location: string): Promise<TransporterBackend> {
  const { transporterId, name } = parseTransporterLocation(location);
  if (!context) throw new TransferPeerError(`${location}: this process has no Transporter CA certificate to reach other Transporters with`);
  const identity = context.identity();
  if (!identity) throw new TransferPeerError(`${location}: the Director has not signed this process's certificate request yet (it does within seconds of the request; is the Director running?)`);
  const db = context.db;
  // Only columns a Transporter's role may read (docs/SECURITY.md): never the CA's key.
  const [peer, ca] = await Promise.all([
    db.transporter.findUnique({ where: { id: transporterId }, select: { id: true, lastHeartbeat: true, tlsFingerprint: true, serveAddress: true, servedRepositories: true } }),
    db.transferCa.findUnique({ where: { id: 1 }, select: { certPem: true } }),
  ]);
  if (!peer) throw new TransferPeerError(`${location}: no Transporter ${transporterId} is registered`);
  if (!ca) throw new TransferPeerError(`${location}: the Director has not made its Transporter CA yet (it does at its first start)`);
  if (!peer.serveAddress) throw new TransferPeerError(`${location}: Transporter ${transporterId} serves no repositories (set VAULTLINE_SERVE_REPOSITORIES and VAULTLINE_SERVE_ADDRESS on it, and restart it)`);
  if (!peer.tlsFingerprint) throw new TransferPeerError(`${location}: Transporter ${transporterId} has no certificate from the Director yet; it gets one within seconds of starting while the Director runs`);
  if (!peer.servedRepositories.includes(name)) {
    throw new TransferPeerError(`${location}: Transporter ${transporterId} serves ${peer.servedRepositories.join(', ') || 'no repositories'}, not ${name}; add ${name}=<folder> to its VAULTLINE_SERVE_REPOSITORIES`);
  }
  const { host, port } = parseServeAddress(peer.serveAddress);
  const backend = new TransporterBackend({ host, port, repository: name, identity: { certPem: identity.certPem, keyPem: identity.keyPem }, caPem: ca.certPem, serverFingerprint: peer.tlsFingerprint });
  try {
    await backend.stat('');
  } catch (err) {
    await backend.close().catch(() => undefined);
    const at = `Transporter ${transporterId} at ${peer.serveAddress}`;
    if (err instanceof PinMismatchError) {
      throw new TransferPeerError(`${location}: ${at} presents a certificate other than the one the Director issued it (expected SHA-256 ${err.expected}, got ${err.actual}); refusing to send it anything. If it was reinstalled, restart it so that it asks for a new certificate`);
    }
    if (err instanceof UntrustedServerError) throw new TransferPeerError(`${location}: ${err.message}; refusing to send it anything`);
    if (err instanceof TransferError) throw new TransferPeerError(`${location}: ${at} refused: ${err.message}`);
    const code = (err as NodeJS.ErrnoException).code;
    if (code && CONNECT_ERRORS.has(code)) {
      const heard = peer.lastHeartbeat ? `its last heartbeat was at ${peer.lastHeartbeat.toISOString()}` : 'it has never sent a heartbeat';
      throw new TransferPeerError(`${location}: ${at} does not answer (${code}); ${heard}. Is it running, and can this machine reach that address?`);
    }
    throw new TransferPeerError(`${location}: ${at}: ${(err as Error).message}`);
  }
  return backend;
}
