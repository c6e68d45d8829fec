/**
 * The Director's Transporter CA. Every Transporter gets a certificate from it naming its id
 * (SAN URI `urn:vaultline:transporter:<id>`); a Transporter serving repositories trusts exactly
 * this CA for its clients and asks the Director which ids may use which repository. The clients in
 * turn pin the serving Transporter's certificate by its fingerprint.
 */
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
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
  const now = opts.now ?? new Date();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const { publicKey, keyPem } = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(now.getTime() - DAY_MS);
  cert.validity.notAfter = new Date(now.getTime() + (opts.validDays ?? LEAF_DAYS) * DAY_MS);
  cert.setSubject([{ shortName: 'CN', value: transporterId }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    // type 6: URI, 2: dNSName, 7: iPAddress.
    {
      name: 'subjectAltName',
      altNames: [
        { type: 6, value: `${URI_PREFIX}${transporterId}` },
        ...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })),
        ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  return { certPem, keyPem, fingerprint: certificateFingerprint(certPem) };
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
