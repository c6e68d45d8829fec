/**
 * Secrets sealed to one recipient's X25519 public key (ECIES), so a remote
 * Transporter can open the vCenter passwords and repository keys it needs
 * without ever holding the appliance key.
 *
 * Seal: a fresh ephemeral X25519 key pair; ECDH with the recipient's public key;
 * HKDF-SHA256 (salt = ephemeral public || recipient public, info names the
 * scheme and the label) gives a one-time AES-256-GCM key; the label is also the
 * AAD. The sealed form is "x1.<ephemeral public>.<iv>.<tag>.<ciphertext>" in
 * base64url. Keys travel as base64url of their raw 32 bytes.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { SecretError } from './secrets.ts';

export interface RecipientKeyPair {
  /** base64url of the raw 32-byte X25519 public key. */
  publicKey: string;
  /** base64url of the raw 32-byte X25519 private key. */
  privateKey: string;
}

const RAW_RE = /^[A-Za-z0-9_-]{43}$/;
/** The PKCS#8 DER header of an X25519 private key; the raw 32 bytes follow it. */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function publicKeyObject(raw: string): KeyObject {
  if (!RAW_RE.test(raw)) throw new SecretError('an X25519 public key must be 32 bytes in base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw }, format: 'jwk' });
}

function privateKeyObject(raw: string): KeyObject {
  if (!RAW_RE.test(raw)) throw new SecretError('an X25519 private key must be 32 bytes in base64url');
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(raw, 'base64url')]), format: 'der', type: 'pkcs8' });
}

function rawPublic(key: KeyObject): string {
  return (key.export({ format: 'jwk' }) as { x: string }).x;
}

export function generateRecipientKeyPair(): RecipientKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { publicKey: rawPublic(publicKey), privateKey: (privateKey.export({ format: 'jwk' }) as { d: string }).d };
}

/** The public half of a private key (to check a key pair belongs together). */
export function recipientPublicKey(privateKey: string): string {
  return rawPublic(createPublicKey(privateKeyObject(privateKey)));
}

function messageKey(shared: Buffer, ephemeral: string, recipient: string, label: string): Buffer {
  const salt = Buffer.concat([Buffer.from(ephemeral, 'base64url'), Buffer.from(recipient, 'base64url')]);
  return Buffer.from(hkdfSync('sha256', shared, salt, `vaultline sealed-to v1 ${label}`, 32));
}

export function sealTo(publicKey: string, label: string, plaintext: string): string {
  const recipient = publicKeyObject(publicKey);
  const eph = generateKeyPairSync('x25519');
  const ephemeral = rawPublic(eph.publicKey);
  const key = messageKey(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }), ephemeral, publicKey, label);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(label));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['x1', ephemeral, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
}

export function openSealedTo(privateKey: string, label: string, sealed: string): string {
  const [version, ephemeral, iv, tag, body] = sealed.split('.');
  if (version !== 'x1' || ephemeral === undefined || iv === undefined || tag === undefined || body === undefined) {
    throw new SecretError(`sealed ${label} is not in a known format`);
  }
  try {
    const own = privateKeyObject(privateKey);
    const key = messageKey(diffieHellman({ privateKey: own, publicKey: publicKeyObject(ephemeral) }), ephemeral, rawPublic(createPublicKey(own)), label);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(label));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretError(`cannot open sealed ${label}: it was sealed to another key, or it is damaged`);
  }
}
