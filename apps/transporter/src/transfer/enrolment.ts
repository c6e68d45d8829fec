/**
 * This Transporter's certificate from the Director's Transporter CA (transfer, issue #17). Its key pair
 * is made once in `<data dir>/transfer/key.pem` (0600) and never leaves it: the Transporter writes a
 * certificate request into its own row and waits for the Director to sign it. Until then it takes work
 * as usual; only repositories served by other Transporters, and serving its own, wait for it.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createFileOnce, type TransferIdentity } from '@vaultline/appliance';
import { certificateFits, certificateRequest, makeTransferKey, namesCovered, type ServeNames } from '@vaultline/tls';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';

export interface Enrolment {
  /** The certificate and key once the Director has signed them; null before. */
  identity(): TransferIdentity | null;
  /** Resolves with the identity and the CA certificate (to trust clients by) once signed. */
  ready: Promise<{ identity: TransferIdentity; caPem: string }>;
  stop(): void;
}

/** How often a signed Transporter looks for a renewed certificate (the Director renews 30 days before the end). */
const RENEW_POLL_MS = 60_000;

/** The key in the data dir, made at first use. */
export async function transferKey(dataDir: string): Promise<string> {
  const dir = path.join(dataDir, 'transfer');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'key.pem');
  await createFileOnce(file, makeTransferKey());
  return readFile(file, 'utf8');
}

/**
 * Writes the request (again at every start: the Director signs only when the key changed or the
 * certificate nears its end) and polls for the certificate every `pollMs`; once signed, for a renewal
 * every `renewPollMs`, handed to `onRenewed`. The row may not exist yet
 * (the Director mirrors a local Transporter at its first heartbeat): the request is written once it does.
 */
export function enrol(deps: { db: Db; id: string; dataDir: string; log: Logger; names?: ServeNames; pollMs?: number; renewPollMs?: number; onRenewed?: (identity: TransferIdentity) => void }): Enrolment {
  const { db, id, log } = deps;
  let identity: TransferIdentity | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let resolve: (v: { identity: TransferIdentity; caPem: string }) => void = () => undefined;
  const ready = new Promise<{ identity: TransferIdentity; caPem: string }>((r) => (resolve = r));
  let keyPem: string | null = null;
  let csr: string | null = null;
  let requested = false;
  let waitingSince = Date.now();
  const poll = async () => {
    try {
      keyPem ??= await transferKey(deps.dataDir);
      csr ??= certificateRequest(keyPem, id, deps.names);
      // updateMany: no RETURNING, so a role that may only update these columns can write it.
      if (!requested) requested = (await db.transporter.updateMany({ where: { id }, data: { tlsCsr: csr } })).count > 0;
      if (requested) {
        const [row, ca] = await Promise.all([
          db.transporter.findUnique({ where: { id }, select: { tlsCert: true } }),
          db.transferCa.findUnique({ where: { id: 1 }, select: { certPem: true } }),
        ]);
        // A certificate of an earlier start may lack a name asked for now: the Director issues a new one.
        if (row?.tlsCert && ca && row.tlsCert !== identity?.certPem && certificateFits(row.tlsCert, ca.certPem, keyPem) && namesCovered(row.tlsCert, csr)) {
          const first = identity === null;
          identity = { id, certPem: row.tlsCert, keyPem };
          if (first) {
            log.info({ id }, 'got the transfer certificate from the Director');
            resolve({ identity, caPem: ca.certPem });
          } else {
            // The Director renews a certificate near its end for the same key: clients pin the new one at once.
            log.info({ id }, 'got a renewed transfer certificate from the Director');
            deps.onRenewed?.(identity);
          }
        }
      }
      if (!identity && Date.now() - waitingSince > 60_000) {
        waitingSince = Date.now();
        log.warn({ id }, requested ? 'still waiting for the Director to sign the transfer certificate request (is the Director running? see its log for a refusal)' : 'this Transporter has no row yet to write its transfer certificate request to; the Director adds it at its first heartbeat');
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'transfer enrolment failed; will retry');
    }
    // Once signed, it keeps watching (slowly) for the renewal the Director makes near the certificate's end.
    if (!stopped) timer = setTimeout(() => void poll(), identity ? (deps.renewPollMs ?? RENEW_POLL_MS) : (deps.pollMs ?? 1_000));
  };
  void poll();
  return {
    identity: () => identity,
    ready,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
