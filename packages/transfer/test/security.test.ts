/**
 * Who gets in: only a Transporter with a certificate from the Transporter CA whose id `allow` accepts,
 * talking to the server it pinned, with paths that stay inside the repository folder.
 */
import * as fs from 'node:fs';
import https from 'node:https';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '@vaultline/repository';
import { PinMismatchError, pinnedFetch } from '@vaultline/tls';
import { RepositoryServer, TransferError, UntrustedServerError, issueTransporterCertificate, makeTransporterCa } from '../src/index.ts';
import type { TransporterBackend } from '../src/index.ts';
import { startFixture, type Fixture } from './fixture.ts';

let fx: Fixture;
let outside = '';
beforeAll(async () => {
  fx = await startFixture();
  fs.writeFileSync(path.join(fx.folders.main!, 'secret'), 'repository data');
  // A file beside the served folder, where a traversal would land.
  outside = path.join(path.dirname(fx.folders.main!), 'outside');
  fs.writeFileSync(outside, 'not served');
});
afterAll(() => fx?.stop());

/** The served folder, file by file, to show that nothing was written. */
const snapshot = () => fs.readdirSync(path.dirname(fx.folders.main!), { recursive: true }).sort();

/** Every kind of call; each must fail. */
async function everyCallFails(b: TransporterBackend, check: (err: unknown) => void): Promise<void> {
  const calls: Array<() => Promise<unknown>> = [
    () => b.readFile('secret'),
    () => b.readRange('secret', 0, 4),
    () => b.list(''),
    () => b.stat('secret'),
    () => b.writeFileAtomic('planted', Buffer.from('x')),
    () => b.createExclusive('locks/planted', Buffer.from('x')),
    () => b.openWriter('packs/aa/planted.pack').then(async (w) => {
      await w.write(Buffer.alloc(1024 * 1024));
      await w.commit();
    }),
    () => b.remove('secret'),
    () => b.mkdirp('planted-dir'),
    () => b.lacking([Buffer.alloc(32)]),
  ];
  for (const call of calls) check(await call().then(() => null, (err: unknown) => err));
}

describe('who may use a served repository', () => {
  it('the allowed Transporter reads and writes (the other tests are refusals of this)', async () => {
    const b = fx.connect();
    expect((await b.readFile('secret')).toString()).toBe('repository data');
    await b.writeFileAtomic('allowed', Buffer.from('ok'));
    await b.remove('allowed');
  });

  it('a client without a certificate fails the TLS handshake and gets nothing', async () => {
    const before = snapshot();
    const fetch = pinnedFetch(fx.server.fingerprint);
    const url = (op: string) => `https://127.0.0.1:${fx.server.port}/r/main/${op}?path=secret`;
    await expect(fetch(url('file')).then((r) => r.arrayBuffer())).rejects.toThrow(/certificate|socket|ECONNRESET/i);
    await expect(fetch(url('create'), { method: 'POST', body: 'x' }).then((r) => r.arrayBuffer())).rejects.toThrow();
    expect(snapshot()).toEqual(before);
  });

  it('a certificate from another CA fails the handshake: no call reads or writes anything', async () => {
    const before = snapshot();
    const stranger = issueTransporterCertificate(makeTransporterCa(), 'tp-source');
    const b = fx.connect({ identity: stranger });
    await everyCallFails(b, (err) => {
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(TransferError);
    });
    expect(snapshot()).toEqual(before);
  });

  it('a Transporter that allow() refuses gets 403 for every call', async () => {
    const before = snapshot();
    const b = fx.connect({ identity: issueTransporterCertificate(fx.ca, 'tp-stranger') });
    await everyCallFails(b, (err) => {
      expect(err).toBeInstanceOf(TransferError);
      expect(err).toMatchObject({ status: 403, remoteCode: 'FORBIDDEN', message: expect.stringContaining('tp-stranger') });
    });
    expect(snapshot()).toEqual(before);
  });

  it('an unknown repository is refused by name, without touching the others', async () => {
    const err = await fx.connect({ repository: 'nope' }).list('').catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 404, remoteCode: 'NO_SUCH_REPOSITORY' });
    expect(err).not.toBeInstanceOf(NotFoundError);
  });
});

describe('which server the client talks to', () => {
  it('a wrong pinned fingerprint: the client refuses before sending anything, naming both fingerprints', async () => {
    const other = issueTransporterCertificate(fx.ca, 'tp-elsewhere');
    const b = fx.connect({ serverFingerprint: other.fingerprint });
    const err = await b.writeFileAtomic('pinned', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PinMismatchError);
    expect((err as Error).message).toContain(other.fingerprint);
    expect((err as Error).message).toContain(fx.server.fingerprint);
    await expect(b.readFile('secret')).rejects.toBeInstanceOf(PinMismatchError);
    expect(fs.existsSync(path.join(fx.folders.main!, 'pinned'))).toBe(false);
  });

  it('a server whose certificate is pinned but not issued by the Transporter CA is refused too', async () => {
    const rogueCa = makeTransporterCa();
    const rogue = await RepositoryServer.start({
      host: '127.0.0.1',
      port: 0,
      identity: issueTransporterCertificate(rogueCa, 'tp-rogue', { ipAddresses: ['127.0.0.1'] }),
      // It would even accept our client certificate.
      caPem: fx.ca.certPem,
      repositories: { main: fx.folders.main! },
      allow: () => true,
    });
    try {
      const b = fx.connect({ port: rogue.port, serverFingerprint: rogue.fingerprint });
      await expect(b.writeFileAtomic('to-rogue', Buffer.from('x'))).rejects.toBeInstanceOf(UntrustedServerError);
    } finally {
      await rogue.close();
    }
    expect(fs.existsSync(path.join(fx.folders.main!, 'to-rogue'))).toBe(false);
  });
});

describe('paths stay inside the repository folder', () => {
  /** A request as written, with the allowed client's certificate. */
  const raw = (method: string, target: string, body?: string, trailers?: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: fx.server.port, method, path: target, cert: fx.clientCert.certPem, key: fx.clientCert.keyPem, ca: fx.ca.certPem, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      if (trailers) {
        req.write(body ?? '');
        req.addTrailers(trailers);
        req.end();
      } else req.end(body);
    });

  const bad = ['../outside', '/etc/passwd', '%2e%2e/outside', '%2E%2E%2Foutside', 'a/../../outside', './secret', 'a//b', '..', 'a\\..\\outside', 'x%00y'];

  it.each(bad)('%s is refused with 400 by every operation, and nothing outside is read or touched', async (p) => {
    const before = snapshot();
    for (const [method, op] of [
      ['GET', 'file'],
      ['GET', 'range'],
      ['GET', 'stat'],
      ['GET', 'list'],
      ['PUT', 'upload'],
      ['POST', 'create'],
      ['DELETE', 'file'],
      ['DELETE', 'dir'],
      ['POST', 'mkdir'],
    ] as const) {
      const answer = await raw(method, `/r/main/${op}?path=${p}&offset=0&length=4`, method === 'GET' || method === 'DELETE' ? undefined : 'planted');
      expect(answer.status, `${method} ${op}`).toBe(400);
      expect(answer.body).not.toContain('not served');
    }
    expect(snapshot()).toEqual(before);
    expect(fs.readFileSync(outside, 'utf8')).toBe('not served');
  });

  it('the client refuses the same paths with the server’s 400 (INVALID_ARGUMENT)', async () => {
    const b = fx.connect();
    for (const p of ['../outside', '/etc/passwd', 'a/../../outside', '']) {
      const err = await b.readFile(p).catch((e: unknown) => e);
      expect(err, p).toMatchObject({ status: 400, remoteCode: 'INVALID_ARGUMENT' });
    }
    await expect(b.writeFileAtomic('../outside', Buffer.from('overwritten'))).rejects.toMatchObject({ status: 400 });
    expect(fs.readFileSync(outside, 'utf8')).toBe('not served');
  });

  it('an upload without its commit trailer, or with the wrong size in it, is discarded', async () => {
    const before = snapshot();
    // A body with a length and no trailer: complete as HTTP goes, but never committed.
    expect((await raw('PUT', '/r/main/upload?path=untrailed', 'a whole body')).status).toBe(400);
    expect((await raw('PUT', '/r/main/upload?path=short', 'twelve bytes', { 'vaultline-end': 'commit 13' })).status).toBe(400);
    // The same request with the right size is named: the refusals above are about the trailer.
    expect((await raw('PUT', '/r/main/upload?path=sized', 'twelve bytes', { 'vaultline-end': 'commit 12' })).status).toBe(201);
    expect(fs.readFileSync(path.join(fx.folders.main!, 'sized'), 'utf8')).toBe('twelve bytes');
    fs.rmSync(path.join(fx.folders.main!, 'sized'));
    expect(snapshot()).toEqual(before);
  });

  it('a traversal in the URL path instead of the query names no operation', async () => {
    expect((await raw('GET', '/r/main/../../outside')).status).toBe(404);
    expect((await raw('GET', '/r/%2e%2e/file?path=outside')).status).toBe(404);
  });
});

describe('a renewed server certificate', () => {
  it('is served from the next connection on without a restart: clients pinning the new fingerprint get in, those pinning the old one are refused', async () => {
    const fx2 = await startFixture();
    try {
      const before = fx2.serverCert.fingerprint;
      const renewed = issueTransporterCertificate(fx2.ca, 'tp-repository', { ipAddresses: ['127.0.0.1'] });
      fx2.server.setIdentity(renewed);
      expect(fx2.server.fingerprint).toBe(renewed.fingerprint);
      await expect(fx2.connect({ serverFingerprint: renewed.fingerprint }).stat('nothing-here')).resolves.toBeNull();
      await expect(fx2.connect({ serverFingerprint: before }).stat('nothing-here')).rejects.toThrow(PinMismatchError);
    } finally {
      await fx2.stop();
    }
  });
});
