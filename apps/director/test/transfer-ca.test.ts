/**
 * The Transporter CA (transfer, issue #17) against real PostgreSQL and Redis: the Director signs the
 * requests Transporters write into their rows for their own key pairs, refuses requests that name
 * another Transporter or are not signed by their key, and a Transporter's restricted role reads the
 * CA certificate and the others' pins but never the CA key nor anyone else's row to write.
 */
import { X509Certificate, createPrivateKey, createPublicKey, randomUUID } from 'node:crypto';
import { certificateRequest, makeTransferKey, publicKeyOf } from '@vaultline/tls';
import { createDb, type Db } from '@vaultline/db';
import { memoryLogger } from '@vaultline/logger';
import { transporterIdOf } from '@vaultline/transfer';
// eslint-disable-next-line no-restricted-imports
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTransferCa, signCertificateRequests } from '../src/services/transfer-ca.ts';
import { provisionTransporter, revokeTransporter } from '../src/services/transporter-access.ts';
import { startTestDirector, until, type TestDirector } from './helpers.ts';

const SECRET_KEY = Buffer.alloc(32, 3);

describe('Transporter CA: certificates from requests (real PostgreSQL and Redis)', () => {
  let d: TestDirector;
  const one = `tp-${randomUUID().slice(0, 8)}`;
  const two = `tp-${randomUUID().slice(0, 8)}`;
  let roleDb: Db | null = null;

  beforeAll(async () => {
    d = await startTestDirector();
    for (const id of [one, two]) await d.db.transporter.create({ data: { id, name: id, host: 'h', version: 'test' } });
  }, 60_000);
  afterAll(async () => {
    await roleDb?.$disconnect();
    if (d) {
      await revokeTransporter({ db: d.db, redis: d.redis }, one).catch(() => undefined);
      await d.close();
    }
  });

  it('issues a Transporter a certificate for its own key, naming its id, within seconds of its request', async () => {
    const key = makeTransferKey();
    await d.db.transporter.update({ where: { id: one }, data: { tlsCsr: certificateRequest(key, one) } });
    const row = await until('the certificate', 15_000, async () => {
      const r = await d.db.transporter.findUniqueOrThrow({ where: { id: one } });
      return r.tlsCert ? r : null;
    });
    const cert = new X509Certificate(row.tlsCert!);
    expect(publicKeyOf(row.tlsCert!).equals(publicKeyOf(key))).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(transporterIdOf(cert)).toBe(one);
    expect(row.tlsFingerprint).toBe(cert.fingerprint256);
    const ca = await d.db.transferCa.findUniqueOrThrow({ where: { id: 1 } });
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    // The CA key is sealed with the appliance key, not stored in clear.
    expect(ca.keySealed).not.toContain('PRIVATE KEY');
  });

  it('refuses a request naming another Transporter, or not signed by the key it names, and says why', async () => {
    const ca = await loadTransferCa(d.db, SECRET_KEY);
    const { log, lines } = memoryLogger('transfer-ca-test');
    await d.db.transporter.update({ where: { id: two }, data: { tlsCsr: certificateRequest(makeTransferKey(), one), tlsCert: null } });
    expect(await signCertificateRequests(d.db, ca, log)).toEqual([]);
    expect((await d.db.transporter.findUniqueOrThrow({ where: { id: two } })).tlsCert).toBeNull();
    expect(lines.join('\n')).toContain(`names CN=${one}, not CN=${two}`);

    // Somebody else's public key in a request signed with another key: the signature does not verify.
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = forge.pki.publicKeyFromPem(new X509Certificate((await d.db.transporter.findUniqueOrThrow({ where: { id: one } })).tlsCert!).publicKey.export({ type: 'spki', format: 'pem' }) as string);
    csr.setSubject([{ shortName: 'CN', value: two }]);
    csr.sign(forge.pki.privateKeyFromPem(makePkcs1()), forge.md.sha256.create());
    await d.db.transporter.update({ where: { id: two }, data: { tlsCsr: forge.pki.certificationRequestToPem(csr) } });
    expect(await signCertificateRequests(d.db, ca, log)).toEqual([]);
    expect(lines.join('\n')).toContain('is not signed by the key it names');
    expect((await d.db.transporter.findUniqueOrThrow({ where: { id: two } })).tlsCert).toBeNull();

    // Asking for another identity in the names (the id URI is the Director's to write).
    const key = makeTransferKey();
    const sneaky = forge.pki.createCertificationRequest();
    sneaky.publicKey = forge.pki.publicKeyFromPem(publicKeyPem(key));
    sneaky.setSubject([{ shortName: 'CN', value: two }]);
    sneaky.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: 'urn:vaultline:transporter:director' }] }] }]);
    sneaky.sign(forge.pki.privateKeyFromPem(forge.pki.privateKeyToPem(forge.pki.privateKeyFromPem(key))), forge.md.sha256.create());
    await d.db.transporter.update({ where: { id: two }, data: { tlsCsr: forge.pki.certificationRequestToPem(sneaky) } });
    expect(await signCertificateRequests(d.db, ca, log)).toEqual([]);
    expect(lines.join('\n')).toContain('only host names and IP addresses may be asked for');

    // Host names and addresses asked for are named, so TLS clients accept the serving Transporter's name.
    await d.db.transporter.update({ where: { id: two }, data: { tlsCsr: certificateRequest(key, two, { dnsNames: ['repo.example.com'], ipAddresses: ['10.1.2.3'] }) } });
    expect(await signCertificateRequests(d.db, ca, log)).toEqual([two]);
    const issued = new X509Certificate((await d.db.transporter.findUniqueOrThrow({ where: { id: two } })).tlsCert!);
    expect(issued.subjectAltName).toBe(`URI:urn:vaultline:transporter:${two}, DNS:repo.example.com, IP Address:10.1.2.3`);
  });

  it("a Transporter's role writes its own request, reads the CA certificate and the others' pins, never the CA key nor others' rows", async () => {
    const creds = await provisionTransporter({ db: d.db, redis: d.redis, secretKey: SECRET_KEY, namespace: d.database.name }, one);
    const url = new URL(d.database.url);
    url.username = creds.user;
    url.password = creds.dbPassword;
    roleDb = createDb(url.toString(), { sealedColumns: false });
    await expect(roleDb.$queryRawUnsafe('SELECT key_sealed FROM transfer_ca')).rejects.toThrow(/permission denied/);
    await expect(roleDb.$queryRawUnsafe('SELECT * FROM transfer_ca')).rejects.toThrow(/permission denied/);
    expect(await roleDb.transferCa.findUnique({ where: { id: 1 }, select: { certPem: true } })).toMatchObject({ certPem: expect.stringContaining('BEGIN CERTIFICATE') });
    const pins = await roleDb.transporter.findMany({ select: { id: true, tlsFingerprint: true, serveAddress: true, servedRepositories: true } });
    expect(pins.map((p) => p.id).sort()).toEqual([one, two].sort());

    expect((await roleDb.transporter.updateMany({ where: { id: one }, data: { tlsCsr: certificateRequest(makeTransferKey(), one), serveAddress: '127.0.0.1:1' } })).count).toBe(1);
    // Row-level security: another Transporter's row is not there to update.
    expect((await roleDb.transporter.updateMany({ where: { id: two }, data: { serveAddress: '127.0.0.1:2' } })).count).toBe(0);
    expect((await d.db.transporter.findUniqueOrThrow({ where: { id: two } })).serveAddress).toBeNull();
    // Its certificate and pin are the Director's to write.
    await expect(roleDb.transporter.updateMany({ where: { id: one }, data: { tlsCert: 'forged' } })).rejects.toThrow(/permission denied/);
    await expect(roleDb.transporter.updateMany({ where: { id: one }, data: { tlsFingerprint: 'AA' } })).rejects.toThrow(/permission denied/);
    await expect(roleDb.$queryRawUnsafe('SELECT tls_csr FROM transporters')).rejects.toThrow(/permission denied/);
  });
});

function publicKeyPem(keyPem: string): string {
  return createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }) as string;
}

function makePkcs1(): string {
  return forge.pki.privateKeyToPem(forge.pki.privateKeyFromPem(makeTransferKey()));
}
