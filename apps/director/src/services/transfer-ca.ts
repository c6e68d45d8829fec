/**
 * The Transporter CA (transfer, issue #17). Made at the Director's first start: its certificate in
 * `transfer_ca`, its key sealed with the appliance key beside it (a Transporter's role reads the
 * certificate only). Every few seconds the Director signs the certificate requests Transporters wrote
 * into their rows (key pairs that never leave their data dirs), and it gives itself a client
 * certificate (`director`) so the API can open repositories other Transporters serve.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { SECRET_LABELS, createFileOnce, useTransferContext, type TransferIdentity } from '@vaultline/appliance';
import { CertificateRequestError, certificateRequest, makeTransferKey, makeTransporterCa, namesCovered, publicKeyOf, signCertificateRequest, type CertificateAuthority } from '@vaultline/tls';
import { openSecret, sealSecret } from '@vaultline/config';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';


/** The id the Director's own certificate names; no Transporter gets it. */
export const DIRECTOR_TRANSFER_ID = 'director';
/** A Transporter waits for its certificate at start, so requests are looked at often; the query is one indexed scan. */
const SIGN_INTERVAL_MS = 2_000;
/** A certificate this close to its end is issued again for the same request. */
const RENEW_MS = 30 * 24 * 60 * 60 * 1000;

/** The CA, made (once, whichever Director starts first) if there is none yet. */
export async function loadTransferCa(db: Db, secretKey: Buffer): Promise<CertificateAuthority> {
  let row = await db.transferCa.findUnique({ where: { id: 1 } });
  if (!row) {
    const made = makeTransporterCa();
    await db.transferCa.createMany({ data: [{ id: 1, certPem: made.certPem, keySealed: sealSecret(secretKey, SECRET_LABELS.transferCaKey, made.keyPem) }], skipDuplicates: true });
    row = await db.transferCa.findUniqueOrThrow({ where: { id: 1 } });
  }
  return { certPem: row.certPem, keyPem: openSecret(secretKey, SECRET_LABELS.transferCaKey, row.keySealed) };
}

/** The Director's client certificate: its key in `<data dir>/transfer/key.pem` (0600), the certificate signed afresh at every start. */
export async function directorTransferIdentity(dataDir: string, ca: CertificateAuthority): Promise<TransferIdentity> {
  const dir = path.join(dataDir, 'transfer');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'key.pem');
  await createFileOnce(keyFile, makeTransferKey());
  const keyPem = await readFile(keyFile, 'utf8');
  const { certPem } = signCertificateRequest(ca, certificateRequest(keyPem, DIRECTOR_TRANSFER_ID), DIRECTOR_TRANSFER_ID);
  return { id: DIRECTOR_TRANSFER_ID, certPem, keyPem };
}

/** Whether `certPem` is this CA's, for the key and names of `csrPem`, and not about to expire. */
function stillGood(certPem: string, csrPem: string, ca: CertificateAuthority): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return cert.verify(new X509Certificate(ca.certPem).publicKey) && Date.parse(cert.validTo) - Date.now() > RENEW_MS && publicKeyOf(certPem).equals(publicKeyOf(csrPem)) && namesCovered(certPem, csrPem);
  } catch {
    return false;
  }
}

/**
 * Signs every Transporter's request that has no good certificate yet. A request that cannot be signed
 * (another id, not signed by its key, …) is logged once per request text (`refused` remembers them).
 */
export async function signCertificateRequests(db: Db, ca: CertificateAuthority, log: Logger, refused = new Map<string, string>()): Promise<string[]> {
  const signed: string[] = [];
  for (const row of await db.transporter.findMany({ where: { tlsCsr: { not: null } }, select: { id: true, tlsCsr: true, tlsCert: true } })) {
    const csr = row.tlsCsr!;
    if ((row.tlsCert && stillGood(row.tlsCert, csr, ca)) || refused.get(row.id) === csr) continue;
    try {
      // Its certificate would let a Transporter pass for the Director.
      if (row.id === DIRECTOR_TRANSFER_ID) throw new CertificateRequestError(`a Transporter may not be called ${DIRECTOR_TRANSFER_ID}; give it another VAULTLINE_TRANSPORTER_ID`);
      const { certPem, fingerprint } = signCertificateRequest(ca, csr, row.id);
      // Only for the request just read: a newer one is signed at the next tick.
      const { count } = await db.transporter.updateMany({ where: { id: row.id, tlsCsr: csr }, data: { tlsCert: certPem, tlsFingerprint: fingerprint } });
      if (count) {
        signed.push(row.id);
        log.info({ transporter: row.id, fingerprint }, 'issued the Transporter its transfer certificate');
      }
    } catch (err) {
      if (!(err instanceof CertificateRequestError)) throw err;
      refused.set(row.id, csr);
      log.error({ transporter: row.id, reason: err.message }, 'refused to sign a Transporter certificate request');
    }
  }
  return signed;
}

export interface TransferCaService {
  stop(): void;
}

/**
 * Loads the CA (retrying while the database is away), sets the Director's transfer identity for
 * every repository it opens, then signs requests every SIGN_INTERVAL_MS.
 */
export function startTransferCa(deps: { db: Db; secretKey: Buffer; dataDir: string; log: Logger; intervalMs?: number }): TransferCaService {
  let ca: CertificateAuthority | null = null;
  let identity: TransferIdentity | null = null;
  let running = false;
  const refused = new Map<string, string>();
  let failing = false;
  useTransferContext({ db: deps.db, identity: () => identity });
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      if (!ca || !identity) {
        const loaded = await loadTransferCa(deps.db, deps.secretKey);
        identity = await directorTransferIdentity(deps.dataDir, loaded);
        ca = loaded;
      }
      await signCertificateRequests(deps.db, ca, deps.log, refused);
      if (failing) deps.log.info('the Transporter CA signs requests again');
      failing = false;
    } catch (err) {
      // Once per outage (the database is away, most likely), not every tick.
      if (!failing) deps.log.warn({ err }, 'the Transporter CA cannot sign requests now; retrying every few seconds');
      failing = true;
    } finally {
      running = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), deps.intervalMs ?? SIGN_INTERVAL_MS);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      useTransferContext(null);
    },
  };
}
