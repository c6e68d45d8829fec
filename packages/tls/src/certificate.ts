/**
 * The certificate the Director serves: the operator's own (VAULTLINE_TLS_CERT and
 * VAULTLINE_TLS_KEY), or a self-signed RSA 2048 one made at first start into
 * the data dir and kept until it is within 30 days of expiring. Browsers and the
 * CLI trust it by its SHA-256 fingerprint, which `npm start` and the OVA console print.
 */
import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';

/** Where the self-signed certificate and its key live, relative to the data dir. */
export const SELF_SIGNED_CERT = path.join('tls', 'cert.pem');
export const SELF_SIGNED_KEY = path.join('tls', 'key.pem');

const DAY_MS = 24 * 60 * 60 * 1000;
/** A self-signed certificate is made for two years and made again once it has 30 days or less left. */
const VALID_DAYS = 730;
const RENEW_DAYS = 30;

export interface TlsIdentity {
  /** PEM certificate and private key, as handed to the HTTPS server. */
  cert: string;
  key: string;
  /** SHA-256 of the certificate (DER), as `AB:CD:…`: what a client pins. */
  fingerprint: string;
  /** The certificate's file (the operator's own or the self-signed one). */
  certFile: string;
  /** Made at this start (none was there, or it was about to expire). */
  generated: boolean;
  notAfter: Date;
}

export interface LoadTlsOptions {
  dataDir: string;
  /** VAULTLINE_TLS_CERT / VAULTLINE_TLS_KEY: the operator's own PEM files (both or neither). */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** The address the Director listens on (VAULTLINE_HOST); an IP address goes into the self-signed certificate. */
  listenHost?: string | undefined;
  now?: Date;
}

/** SHA-256 of a PEM certificate as colon-separated upper-case hex (the form Node's getPeerCertificate() gives). */
export function certificateFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/** Base64 SHA-256 of the certificate's public key (SPKI), as Chromium's --ignore-certificate-errors-spki-list takes it. */
export function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** The names the self-signed certificate is valid for: loopback, this machine's hostname, and the listen address when it is one. */
export function selfSignedNames(listenHost?: string): { dns: string[]; ip: string[] } {
  const dns = new Set(['localhost', os.hostname()].filter((h) => h && !net.isIP(h)));
  const ip = new Set(['127.0.0.1', '::1']);
  if (listenHost && net.isIP(listenHost) && listenHost !== '0.0.0.0' && listenHost !== '::') ip.add(listenHost);
  else if (listenHost && !net.isIP(listenHost)) dns.add(listenHost);
  return { dns: [...dns], ip: [...ip] };
}

/** A self-signed RSA 2048 server certificate for these names, valid from a day ago for VALID_DAYS. */
export function makeSelfSignedCertificate(names: { dns: string[]; ip: string[] }, now = new Date()): { cert: string; key: string } {
  // The key pair comes from OpenSSL (node:crypto); node-forge only writes and signs the certificate.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
  // A positive 16-byte serial number (the top bit clear).
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - DAY_MS);
  cert.validity.notAfter = new Date(now.getTime() + VALID_DAYS * DAY_MS);
  const subject = [{ shortName: 'CN', value: `Vaultline Director ${os.hostname()}`.slice(0, 64) }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    // type 2: dNSName, type 7: iPAddress.
    { name: 'subjectAltName', altNames: [...names.dns.map((value) => ({ type: 2, value })), ...names.ip.map((ip) => ({ type: 7, ip }))] },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }) as string), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key };
}

function identity(cert: string, key: string, certFile: string, generated: boolean): TlsIdentity {
  const parsed = new X509Certificate(cert);
  if (!parsed.checkPrivateKey(createPrivateKey(key))) throw new Error(`the key does not belong to the certificate ${certFile}`);
  return { cert, key, fingerprint: parsed.fingerprint256, certFile, generated, notAfter: new Date(parsed.validTo) };
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * The certificate and key to serve. With the operator's own files, those (read at
 * every start; an unreadable or mismatched pair stops the Director). Otherwise the
 * self-signed pair in the data dir, made when missing or within 30 days of expiry;
 * the key is written mode 0600.
 */
export async function loadTlsIdentity(opts: LoadTlsOptions): Promise<TlsIdentity> {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile) throw new Error('set both VAULTLINE_TLS_CERT and VAULTLINE_TLS_KEY, or neither (for a self-signed certificate)');
    const [cert, key] = await Promise.all([readFile(opts.certFile, 'utf8'), readFile(opts.keyFile, 'utf8')]).catch((err: unknown) => {
      throw new Error(`cannot read the TLS certificate or key: ${(err as Error).message}`);
    });
    return identity(cert, key, opts.certFile, false);
  }
  const now = opts.now ?? new Date();
  const certFile = path.join(opts.dataDir, SELF_SIGNED_CERT);
  const keyFile = path.join(opts.dataDir, SELF_SIGNED_KEY);
  const [cert, key] = await Promise.all([readIfExists(certFile), readIfExists(keyFile)]);
  if (cert && key) {
    // A damaged or mismatched pair of our own making is simply made again.
    const kept = (() => {
      try {
        return identity(cert, key, certFile, false);
      } catch {
        return null;
      }
    })();
    if (kept && kept.notAfter.getTime() - now.getTime() > RENEW_DAYS * DAY_MS) return kept;
  }
  const made = makeSelfSignedCertificate(selfSignedNames(opts.listenHost), now);
  await mkdir(path.dirname(certFile), { recursive: true, mode: 0o700 });
  // Written aside and renamed, so a crash never leaves a half-written file.
  await writeFile(`${keyFile}.new`, made.key, { mode: 0o600 });
  await chmod(`${keyFile}.new`, 0o600);
  await writeFile(`${certFile}.new`, made.cert, { mode: 0o644 });
  await rename(`${keyFile}.new`, keyFile);
  await rename(`${certFile}.new`, certFile);
  return identity(made.cert, made.key, certFile, true);
}
