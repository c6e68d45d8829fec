import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateRecipientKeyPair, openSealedTo, recipientPublicKey, sealTo } from '../src/index.ts';

describe('secrets sealed to a Transporter key (X25519 + HKDF-SHA256 + AES-256-GCM)', () => {
  const pair = generateRecipientKeyPair();

  it('opens only with the recipient private key, under the same label', () => {
    const sealed = sealTo(pair.publicKey, 'vcenter-password', 'hunter2!');
    expect(sealed).toMatch(/^x1\./);
    expect(sealed).not.toContain('hunter2');
    expect(openSealedTo(pair.privateKey, 'vcenter-password', sealed)).toBe('hunter2!');
    expect(() => openSealedTo(pair.privateKey, 'repository-passphrase', sealed)).toThrow(/another key, or it is damaged/);
    expect(() => openSealedTo(generateRecipientKeyPair().privateKey, 'vcenter-password', sealed)).toThrow(/another key/);
    const parts = sealed.split('.');
    parts[4] = Buffer.from('hunter3!').toString('base64url');
    expect(() => openSealedTo(pair.privateKey, 'vcenter-password', parts.join('.'))).toThrow(/damaged/);
  });

  it('uses a fresh ephemeral key per value, so equal secrets do not look equal', () => {
    expect(sealTo(pair.publicKey, 'l', 'same')).not.toBe(sealTo(pair.publicKey, 'l', 'same'));
  });

  it('keys are raw 32-byte X25519 keys that node:crypto agrees with', () => {
    expect(Buffer.from(pair.publicKey, 'base64url')).toHaveLength(32);
    expect(Buffer.from(pair.privateKey, 'base64url')).toHaveLength(32);
    expect(recipientPublicKey(pair.privateKey)).toBe(pair.publicKey);
    const other = generateKeyPairSync('x25519');
    const mine = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(pair.privateKey, 'base64url')]), format: 'der', type: 'pkcs8' });
    const theirs = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: pair.publicKey }, format: 'jwk' });
    expect(diffieHellman({ privateKey: mine, publicKey: other.publicKey })).toEqual(diffieHellman({ privateKey: other.privateKey, publicKey: theirs }));
  });

  it('refuses malformed keys and values', () => {
    expect(() => sealTo('short', 'l', 'x')).toThrow(/32 bytes/);
    expect(() => openSealedTo(pair.privateKey, 'l', 'v1.a.b.c')).toThrow(/not in a known format/);
  });
});
