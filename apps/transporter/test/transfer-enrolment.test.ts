/**
 * A Transporter's transfer enrolment against real PostgreSQL: its key pair stays in its data dir
 * (0600 in a 0700 folder), its request is written once its row exists, and it takes a certificate only
 * when the Director's CA signed it for that key and the names it serves at.
 */
import { X509Certificate, randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { publicKeyOf, signCertificateRequest } from '@vaultline/tls';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { memoryLogger } from '@vaultline/logger';
import { issueTransporterCertificate, makeTransporterCa } from '@vaultline/transfer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrol } from '../src/transfer/enrolment.ts';
import { serveNames } from '../src/transfer/serve.ts';
import { PG_SERVER } from './fixture.ts';

async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('transfer enrolment (real PostgreSQL)', () => {
  let database: TestDatabase;
  let db: Db;
  let dataDir: string;
  const id = `tp-${randomUUID().slice(0, 8)}`;
  const ca = makeTransporterCa();

  beforeAll(async () => {
    database = await createTestDatabase(PG_SERVER, 'vaultline_enrol');
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'vl-enrol-'));
    await db.transferCa.create({ data: { id: 1, certPem: ca.certPem, keySealed: 'not used here' } });
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps its key in the data dir, writes its request once its row exists, and takes only a certificate of the CA for its key', async () => {
    const { log } = memoryLogger('enrol-test');
    const names = serveNames('127.0.0.1:0').names;
    expect(names).toEqual({ dnsNames: [], ipAddresses: ['127.0.0.1'] });
    const renewals: string[] = [];
    const enrolment = enrol({ db, id, dataDir, log, names, pollMs: 50, renewPollMs: 50, onRenewed: (identity) => renewals.push(identity.certPem) });
    try {
      const keyFile = path.join(dataDir, 'transfer', 'key.pem');
      await until('the key', 10_000, async () => stat(keyFile).catch(() => null));
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
      expect((await stat(path.dirname(keyFile))).mode & 0o777).toBe(0o700);

      // No row yet (the Director adds it at the first heartbeat): the request waits for it.
      await new Promise((r) => setTimeout(r, 200));
      await db.transporter.create({ data: { id, name: id, host: 'h', version: 'test' } });
      const csr = await until('the request', 10_000, async () => (await db.transporter.findUniqueOrThrow({ where: { id } })).tlsCsr);
      expect(csr).toContain('BEGIN CERTIFICATE REQUEST');
      expect(csr).not.toContain('PRIVATE KEY');

      // A certificate of another CA, or for another key, is not taken.
      const foreign = issueTransporterCertificate(makeTransporterCa(), id, { ipAddresses: ['127.0.0.1'] });
      await db.transporter.update({ where: { id }, data: { tlsCert: foreign.certPem } });
      await new Promise((r) => setTimeout(r, 300));
      expect(enrolment.identity()).toBeNull();

      const { certPem } = signCertificateRequest(ca, csr, id);
      await db.transporter.update({ where: { id }, data: { tlsCert: certPem } });
      const { identity, caPem } = await enrolment.ready;
      expect(caPem).toBe(ca.certPem);
      expect(identity.certPem).toBe(certPem);
      expect(publicKeyOf(identity.keyPem).equals(publicKeyOf(certPem))).toBe(true);
      expect(new X509Certificate(certPem).subjectAltName).toContain('IP Address:127.0.0.1');

      // The Director renews the certificate near its end (same key): the Transporter takes it while it runs.
      expect(renewals).toEqual([]);
      const renewed = signCertificateRequest(ca, csr, id).certPem;
      await db.transporter.update({ where: { id }, data: { tlsCert: renewed } });
      await until('the renewal', 10_000, async () => renewals.length > 0);
      expect(renewals).toEqual([renewed]);
      expect(enrolment.identity()!.certPem).toBe(renewed);
    } finally {
      enrolment.stop();
    }
  });
});
