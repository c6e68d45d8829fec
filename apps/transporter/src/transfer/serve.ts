/**
 * Serving repository folders to other Transporters and the Director (VAULTLINE_SERVE_REPOSITORIES at
 * VAULTLINE_SERVE_ADDRESS): mutual TLS with this Transporter's certificate, clients with a certificate
 * of the Director's CA only, and of those only the Director and Transporters still registered (a
 * removed Transporter's certificate stops working within ALLOWED_REFRESH_MS). The folders hold what
 * the clients send: sealed packs and files of encrypted repositories; no key is ever needed here.
 */
import { mkdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import { parseServeAddress, type TransferIdentity } from '@vaultline/appliance';
import type { ServeNames } from '@vaultline/tls';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { RepositoryServer } from '@vaultline/transfer';

/** How often the registered Transporters are read again (the server asks on every request, synchronously). */
const ALLOWED_REFRESH_MS = 5_000;
const WILDCARD = new Set(['0.0.0.0', '::']);

/**
 * Where the others reach this Transporter at `address` (a wildcard is where it listens, not where it is
 * reached: its host name then), and the names its certificate must carry for that.
 */
export function serveNames(address: string): { host: string; names: ServeNames } {
  const { host } = parseServeAddress(address);
  const reached = WILDCARD.has(host) ? os.hostname() : host;
  return { host: reached, names: isIP(reached) ? { dnsNames: [], ipAddresses: [reached] } : { dnsNames: [reached], ipAddresses: [] } };
}

export interface Serving {
  /** `host:port` recorded for the others. */
  address: string;
  /** Serves with a renewed certificate (the Director records its fingerprint, which clients pin). */
  setIdentity(identity: TransferIdentity): void;
  close(): Promise<void>;
}

export async function serveRepositories(deps: { db: Db; id: string; identity: TransferIdentity; caPem: string; repositories: Record<string, string>; address: string; log: Logger }): Promise<Serving> {
  const { db, id, log } = deps;
  const allowed = new Set<string>();
  const refresh = async () => {
    const ids = (await db.transporter.findMany({ select: { id: true } })).map((t) => t.id);
    allowed.clear();
    for (const t of ['director', ...ids]) allowed.add(t);
  };
  await refresh();
  const timer = setInterval(() => void refresh().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not read the registered Transporters; keeping the last list')), ALLOWED_REFRESH_MS);
  timer.unref();
  for (const folder of Object.values(deps.repositories)) await mkdir(folder, { recursive: true, mode: 0o700 });
  const { host, port } = parseServeAddress(deps.address);
  let server: RepositoryServer;
  try {
    server = await RepositoryServer.start({ host, port, identity: deps.identity, caPem: deps.caPem, repositories: deps.repositories, allow: (peer) => allowed.has(peer) });
  } catch (err) {
    clearInterval(timer);
    throw err;
  }
  const reached = serveNames(deps.address).host;
  const address = `${reached.includes(':') ? `[${reached}]` : reached}:${server.port}`;
  const names = Object.keys(deps.repositories);
  await db.transporter.updateMany({ where: { id }, data: { serveAddress: address, servedRepositories: names } });
  log.info({ address, repositories: names, fingerprint: server.fingerprint }, 'serving repositories to other Transporters');
  return {
    address,
    setIdentity(identity) {
      server.setIdentity(identity);
      log.info({ fingerprint: server.fingerprint }, 'serving with the renewed certificate');
    },
    async close() {
      clearInterval(timer);
      await db.transporter.updateMany({ where: { id }, data: { serveAddress: null, servedRepositories: [] } }).catch(() => undefined);
      await server.close();
    },
  };
}
