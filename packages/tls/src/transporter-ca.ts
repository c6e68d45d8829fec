/**
 * The Director's Transporter CA. Every Transporter gets a certificate from it naming its id
 * (SAN URI `urn:vaultline:transporter:<id>`); a Transporter serving repositories trusts exactly
 * this CA for its clients and asks the Director which ids may use which repository. The clients in
 * turn pin the serving Transporter's certificate by its fingerprint.
 */
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { PeerCertificate } from 'node:tls';
import forge from 'node-forge';
import { certificateFingerprint } from './certificate.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_DAYS = 3650;
const LEAF_DAYS = 730;
const URI_PREFIX = 'urn:vaultline:transporter:';
/** What may follow the URI prefix: the same alphabet as repository names, so an id never needs quoting. */
const TRANSPORTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the certificate as `AB:CD:…` (certificateFingerprint of @vaultline/tls): what a client pins. */
  fingerprint: string;
}

export interface IssueOptions {
  /** Names and addresses the Transporter serves repositories on (the server role); none for a client only. */
  dnsNames?: string[];
  ipAddresses?: string[];
  validDays?: number;
  now?: Date;
}

/** The key pair comes from OpenSSL (node:crypto); node-forge only writes and signs the certificate, as in packages/tls. */
function keyPair(): { publicKey: forge.pki.PublicKey; privateKey: forge.pki.rsa.PrivateKey; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string),
    privateKey: forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }) as string),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/** A positive 16-byte serial number (the top bit clear), random so that no two certificates of the CA share one. */
function serialNumber(): string {
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  return serial.toString('hex');
}

/** A self-signed RSA 2048 CA for ten years, allowed to sign certificates only. */
export function makeTransporterCa(now = new Date()): CertificateAuthority {
  const { publicKey, privateKey, keyPem } = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(now.getTime() - DAY_MS);
  cert.validity.notAfter = new Date(now.getTime() + CA_DAYS * DAY_MS);
  const subject = [
    { shortName: 'CN', value: 'Vaultline Transporter CA' },
    { shortName: 'O', value: 'Vaultline' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    // pathLenConstraint 0: the CA signs Transporters, never another CA.
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/**
 * A certificate for Transporter `transporterId`, signed by the CA: good for both TLS roles (a
 * Transporter serves its repositories and stores into others'), valid from a day ago (clock skew).
 */
export function issueTransporterCertificate(ca: CertificateAuthority, transporterId: string, opts: IssueOptions = {}): IssuedCertificate {
  if (!TRANSPORTER_ID.test(transporterId)) throw new Error(`transporter id must match ${TRANSPORTER_ID} (got ${JSON.stringify(transporterId)})`);
  for (const ip of opts.ipAddresses ?? []) if (!net.isIP(ip)) throw new Error(`${JSON.stringify(ip)} is not an IP address`);
  const { publicKey, keyPem } = keyPair();
  const certPem = signLeaf(ca, publicKey, transporterId, { dnsNames: opts.dnsNames ?? [], ipAddresses: opts.ipAddresses ?? [] }, opts.validDays ?? LEAF_DAYS, opts.now ?? new Date());
  return { certPem, keyPem, fingerprint: certificateFingerprint(certPem) };
}

/**
 * The CA's certificate for `publicKey` as Transporter `transporterId`: good for both TLS roles (a
 * Transporter serves its repositories and stores into others'), valid from a day ago (clock skew),
 * naming the id (SAN URI) and the host names and addresses it serves at (TLS clients check the host
 * name besides the pin).
 */
function signLeaf(ca: CertificateAuthority, publicKey: forge.pki.PublicKey, transporterId: string, names: ServeNames, validDays: number, now: Date): string {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(now.getTime() - DAY_MS);
  cert.validity.notAfter = new Date(now.getTime() + validDays * DAY_MS);
  cert.setSubject([{ shortName: 'CN', value: transporterId }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    // type 6: URI, 2: dNSName, 7: iPAddress.
    {
      name: 'subjectAltName',
      altNames: [{ type: 6, value: `${URI_PREFIX}${transporterId}` }, ...names.dnsNames.map((value) => ({ type: 2, value })), ...names.ipAddresses.map((ip) => ({ type: 7, ip }))],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/**
 * The Transporter id a certificate names in its SAN URI, or null when it names none. Node lists the
 * SAN as `URI:…, DNS:…`; an id has no comma or quote (TRANSPORTER_ID), so one that looks otherwise is no id.
 */
export function transporterIdOf(cert: PeerCertificate | X509Certificate): string | null {
  const san = cert instanceof X509Certificate ? cert.subjectAltName : cert.subjectaltname;
  for (const name of (san ?? '').split(', ')) {
    if (!name.startsWith(`URI:${URI_PREFIX}`)) continue;
    const id = name.slice(`URI:${URI_PREFIX}`.length);
    return TRANSPORTER_ID.test(id) ? id : null;
  }
  return null;
}

// ---- certificates from requests: a Transporter's private key never leaves its data dir ----

/** A certificate request the Director will not sign; the message says why. */
export class CertificateRequestError extends Error {
  override name = 'CertificateRequestError';
}

/** A new RSA 2048 private key (PKCS#8 PEM), made by OpenSSL. */
export function makeTransferKey(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** Host names and addresses a serving Transporter is reached at: the TLS client checks the server's certificate names them. */
export interface ServeNames {
  dnsNames: string[];
  ipAddresses: string[];
}

const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * A PKCS#10 request (PEM) for `keyPem`'s public key, naming `transporterId` and asking for the names it
 * serves at, signed with that key.
 */
export function certificateRequest(keyPem: string, transporterId: string, names: ServeNames = { dnsNames: [], ipAddresses: [] }): string {
  const key = createPrivateKey(keyPem);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string);
  csr.setSubject([{ shortName: 'CN', value: transporterId }]);
  // type 2: dNSName, 7: iPAddress.
  const altNames = [...names.dnsNames.map((value) => ({ type: 2, value })), ...names.ipAddresses.map((ip) => ({ type: 7, ip }))];
  if (altNames.length) csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames }] }]);
  csr.sign(forge.pki.privateKeyFromPem(key.export({ type: 'pkcs1', format: 'pem' }) as string), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/**
 * The host names and addresses a request asks for. Only those: the Transporter id in the certificate is
 * the Director's to write, so a request asking for any other kind of name is refused.
 */
export function requestedNames(csr: forge.pki.CertificateSigningRequest, transporterId: string): ServeNames {
  const names: ServeNames = { dnsNames: [], ipAddresses: [] };
  const request = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: Array<{ name?: string; altNames?: Array<{ type: number; value?: string; ip?: string }> }> } | null;
  for (const ext of request?.extensions ?? []) {
    if (ext.name !== 'subjectAltName') throw new CertificateRequestError(`the certificate request of Transporter ${transporterId} asks for the extension ${ext.name ?? '(unknown)'}; only host names and addresses may be asked for`);
    for (const alt of ext.altNames ?? []) {
      if (alt.type === 2 && alt.value && DNS_NAME.test(alt.value)) names.dnsNames.push(alt.value);
      else if (alt.type === 7 && alt.ip && net.isIP(alt.ip)) names.ipAddresses.push(alt.ip);
      else throw new CertificateRequestError(`the certificate request of Transporter ${transporterId} asks for the name ${JSON.stringify(alt.value ?? alt.ip ?? '')} (type ${alt.type}); only host names and IP addresses may be asked for`);
    }
  }
  return names;
}

/** Whether the certificate names every host name and address the request asks for (else it is issued again). */
export function namesCovered(certPem: string, csrPem: string): boolean {
  const san = (new X509Certificate(certPem).subjectAltName ?? '').split(', ');
  const asked = requestedNames(forge.pki.certificationRequestFromPem(csrPem), '');
  return asked.dnsNames.every((n) => san.includes(`DNS:${n}`)) && asked.ipAddresses.every((ip) => san.includes(`IP Address:${ip}`));
}

/** The SPKI (DER) of a PEM public or private key, certificate or certificate request: to compare keys. */
export function publicKeyOf(pem: string): Buffer {
  if (pem.includes('CERTIFICATE REQUEST')) {
    const csr = forge.pki.certificationRequestFromPem(pem);
    return createPublicKey(forge.pki.publicKeyToPem(csr.publicKey as forge.pki.rsa.PublicKey)).export({ type: 'spki', format: 'der' });
  }
  if (pem.includes('CERTIFICATE')) return new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createPublicKey(pem).export({ type: 'spki', format: 'der' });
}

/**
 * Signs `csrPem` for Transporter `transporterId` when it is a request signed by the key it names,
 * an RSA key of at least 2048 bits, whose subject is exactly CN=<transporterId>, asking for host names
 * and addresses only; else a CertificateRequestError saying which. The certificate serves both TLS
 * roles for two years.
 */
export function signCertificateRequest(ca: CertificateAuthority, csrPem: string, transporterId: string, now = new Date()): { certPem: string; fingerprint: string } {
  if (!TRANSPORTER_ID.test(transporterId)) throw new CertificateRequestError(`${JSON.stringify(transporterId)} cannot be named in a certificate`);
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new CertificateRequestError(`the certificate request of Transporter ${transporterId} cannot be read (${(err as Error).message}); it writes a new one when it starts`);
  }
  let signed = false;
  try {
    signed = csr.verify();
  } catch {
    signed = false;
  }
  if (!signed) throw new CertificateRequestError(`the certificate request of Transporter ${transporterId} is not signed by the key it names`);
  const subject = csr.subject.attributes;
  if (subject.length !== 1 || subject[0]!.shortName !== 'CN' || subject[0]!.value !== transporterId) {
    const named = subject.map((a: { shortName?: string; type?: string; value?: unknown }) => `${a.shortName ?? a.type}=${String(a.value)}`).join(', ');
    throw new CertificateRequestError(`the certificate request in Transporter ${transporterId}'s row names ${named || 'nobody'}, not CN=${transporterId}; refusing to sign it`);
  }
  const names = requestedNames(csr, transporterId);
  const publicKey = csr.publicKey as forge.pki.rsa.PublicKey;
  if (!publicKey?.n || publicKey.n.bitLength() < 2048) throw new CertificateRequestError(`the certificate request of Transporter ${transporterId} is not for an RSA key of 2048 bits or more`);

  const certPem = signLeaf(ca, publicKey, transporterId, names, LEAF_DAYS, now);
  return { certPem, fingerprint: certificateFingerprint(certPem) };
}

/** Whether `certPem` was signed by the CA of `caPem`, is valid now, and is for the key `keyPem`. */
export function certificateFits(certPem: string, caPem: string, keyPem: string, now = new Date()): boolean {
  try {
    const cert = new X509Certificate(certPem);
    if (!cert.verify(new X509Certificate(caPem).publicKey)) return false;
    if (new Date(cert.validFrom) > now || new Date(cert.validTo) < now) return false;
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}
