/**
 * Secrets at rest (vCenter passwords, SSH keys, repository passphrases) are
 * sealed with AES-256-GCM under the appliance key. The sealed form is
 * "v1.<iv>.<tag>.<ciphertext>" in base64url, and carries a label in the AAD so
 * a value sealed for one purpose cannot be swapped in for another.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export class SecretError extends Error {
  override name = 'SecretError';
}

function keyBytes(key: string | Buffer): Buffer {
  if (Buffer.isBuffer(key)) {
    if (key.length !== 32) throw new SecretError('the secret key must be 32 bytes');
    return key;
  }
  const hex = /^[0-9a-fA-F]{64}$/.test(key) ? Buffer.from(key, 'hex') : Buffer.from(key, 'base64');
  if (hex.length !== 32) throw new SecretError('VAULTLINE_SECRET_KEY must be 32 bytes as hex or base64');
  return hex;
}

export function sealSecret(key: string | Buffer, label: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyBytes(key), iv);
  cipher.setAAD(Buffer.from(label));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), body].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

export function openSecret(key: string | Buffer, label: string, sealed: string): string {
  const [version, iv, tag, body] = sealed.split('.');
  if (version !== 'v1' || iv === undefined || tag === undefined || body === undefined) {
    throw new SecretError(`sealed ${label} is not in a known format`);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyBytes(key), Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(label));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretError(`cannot open sealed ${label}: wrong appliance key or damaged value`);
  }
}
