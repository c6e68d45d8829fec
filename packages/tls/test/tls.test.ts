import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PinMismatchError, SELF_SIGNED_CERT, SELF_SIGNED_KEY, certificateFingerprint, loadTlsIdentity, makeSelfSignedCertificate, normalizeFingerprint, pinnedFetch, selfSignedNames, spkiHash } from '../src/index.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

describe('the Director certificate', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-tls-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is made at first start into the data dir (key 0600), for loopback, the hostname and the listen address', async () => {
    const dataDir = path.join(dir, 'first');
    const id = await loadTlsIdentity({ dataDir, listenHost: '192.0.2.10' });
    expect(id.generated).toBe(true);
    expect(id.certFile).toBe(path.join(dataDir, SELF_SIGNED_CERT));
    expect((await stat(path.join(dataDir, SELF_SIGNED_KEY))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await readFile(id.certFile, 'utf8'));
    expect(cert.fingerprint256).toBe(id.fingerprint);
    expect(cert.subjectAltName).toBe(`DNS:localhost, DNS:${os.hostname()}, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:192.0.2.10`);
    expect(cert.ca).toBe(false);
    expect(id.notAfter.getTime()).toBeGreaterThan(Date.now() + 700 * DAY_MS);
  });

  it('is kept across restarts, and made again only within 30 days of expiring', async () => {
    const dataDir = path.join(dir, 'kept');
    const first = await loadTlsIdentity({ dataDir });
    const again = await loadTlsIdentity({ dataDir });
    expect(again).toMatchObject({ fingerprint: first.fingerprint, generated: false });
    const monthBefore = new Date(first.notAfter.getTime() - 31 * DAY_MS);
    expect((await loadTlsIdentity({ dataDir, now: monthBefore })).fingerprint).toBe(first.fingerprint);
    const renewed = await loadTlsIdentity({ dataDir, now: new Date(first.notAfter.getTime() - 29 * DAY_MS) });
    expect(renewed.generated).toBe(true);
    expect(renewed.fingerprint).not.toBe(first.fingerprint);
    expect((await loadTlsIdentity({ dataDir })).fingerprint).toBe(renewed.fingerprint);
  });

  it('is the operator\'s own when VAULTLINE_TLS_CERT and VAULTLINE_TLS_KEY are set, and refuses a half or mismatched pair', async () => {
    const own = makeSelfSignedCertificate({ dns: ['backup.example.com'], ip: [] });
    const other = makeSelfSignedCertificate({ dns: ['other.example.com'], ip: [] });
    const certFile = path.join(dir, 'own.crt');
    const keyFile = path.join(dir, 'own.key');
    await writeFile(certFile, own.cert);
    await writeFile(keyFile, own.key);
    const dataDir = path.join(dir, 'own');
    const id = await loadTlsIdentity({ dataDir, certFile, keyFile });
    expect(id).toMatchObject({ fingerprint: certificateFingerprint(own.cert), certFile, generated: false });
    await expect(stat(path.join(dataDir, SELF_SIGNED_CERT))).rejects.toThrow(/ENOENT/);
    await expect(loadTlsIdentity({ dataDir, certFile })).rejects.toThrow('set both VAULTLINE_TLS_CERT and VAULTLINE_TLS_KEY, or neither');
    await writeFile(keyFile, other.key);
    await expect(loadTlsIdentity({ dataDir, certFile, keyFile })).rejects.toThrow(`the key does not belong to the certificate ${certFile}`);
    await expect(loadTlsIdentity({ dataDir, certFile: path.join(dir, 'missing.crt'), keyFile })).rejects.toThrow(/cannot read the TLS certificate or key: ENOENT/);
  });

  it('names the listen address only when it is one address, and a host name as a name', () => {
    expect(selfSignedNames('0.0.0.0').ip).toEqual(['127.0.0.1', '::1']);
    expect(selfSignedNames('vaultline.lan').dns).toContain('vaultline.lan');
  });
});

describe('the pinned client', () => {
  const served = makeSelfSignedCertificate({ dns: ['localhost'], ip: ['127.0.0.1'] });
  let server: https.Server;
  let base: string;
  const seen: string[] = [];
  beforeAll(async () => {
    server = https.createServer({ cert: served.cert, key: served.key }, (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.setHeader('set-cookie', ['a=1; Secure', 'b=2; Secure']);
      res.end(JSON.stringify({ ok: true }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('talks to the certificate with the pinned fingerprint, in any spelling', async () => {
    const fp = certificateFingerprint(served.cert);
    for (const spelling of [fp, fp.toLowerCase(), fp.replace(/:/g, ''), `sha256:${fp}`]) {
      const res = await pinnedFetch(spelling)(`${base}/x`, { method: 'POST', body: '{}' });
      expect(res.status).toBe(200);
      expect(res.headers.getSetCookie()).toEqual(['a=1; Secure', 'b=2; Secure']);
      expect(await res.json()).toEqual({ ok: true });
    }
  });

  it('sends nothing to another certificate, and says which it got', async () => {
    const before = seen.length;
    const wrong = certificateFingerprint(makeSelfSignedCertificate({ dns: ['localhost'], ip: ['127.0.0.1'] }).cert);
    const err = await pinnedFetch(wrong)(`${base}/secret`, { method: 'POST', body: 'password' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PinMismatchError);
    expect((err as Error).message).toBe(`the TLS certificate of 127.0.0.1:${new URL(base).port} is not the one pinned: expected SHA-256 ${wrong}, got ${certificateFingerprint(served.cert)}`);
    expect(seen.length).toBe(before);
    await expect(pinnedFetch(wrong)(base.replace('https:', 'http:'))).rejects.toThrow('is not https: the pinned client only speaks TLS');
  });

  it('reads fingerprints strictly and hashes the public key as Chromium wants it', () => {
    expect(() => normalizeFingerprint('AB:CD')).toThrow('is not a SHA-256 certificate fingerprint');
    expect(spkiHash(served.cert)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });
});
