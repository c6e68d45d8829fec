/**
 * A RepositoryServer on 127.0.0.1 serving fresh folders, with real certificates from a Transporter CA,
 * and TransporterBackends that talk to it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RepositoryServer, TransporterBackend, issueTransporterCertificate, makeTransporterCa } from '../src/index.ts';
import type { CertificateAuthority, IssuedCertificate, TransporterBackendOptions } from '../src/index.ts';

export interface Fixture {
  ca: CertificateAuthority;
  /** The serving Transporter's certificate. */
  serverCert: IssuedCertificate;
  /** A client Transporter the server allows (`tp-source`). */
  clientCert: IssuedCertificate;
  server: RepositoryServer;
  /** Folder of each served repository, by name. */
  folders: Record<string, string>;
  /** A backend for repository `name` (default `main`), as `tp-source` unless told otherwise. */
  connect(overrides?: Partial<TransporterBackendOptions>): TransporterBackend;
  stop(): Promise<void>;
}

export interface FixtureOptions {
  /** Repositories in fresh folders (default `main`). */
  names?: string[];
  /** Repositories in folders of the test's own (a small tmpfs, say). */
  folders?: Record<string, string>;
  /** Transporter ids the server allows (default `tp-source`). */
  allowed?: string[];
}

export async function startFixture(opts: FixtureOptions = {}): Promise<Fixture> {
  const allowed = opts.allowed ?? ['tp-source'];
  const ca = makeTransporterCa();
  const serverCert = issueTransporterCertificate(ca, 'tp-repository', { ipAddresses: ['127.0.0.1'] });
  const clientCert = issueTransporterCertificate(ca, 'tp-source');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-transfer-'));
  const fresh = Object.fromEntries((opts.names ?? (opts.folders ? [] : ['main'])).map((name) => [name, path.join(root, name)]));
  for (const folder of Object.values(fresh)) fs.mkdirSync(folder);
  const folders = { ...fresh, ...opts.folders };
  const server = await RepositoryServer.start({
    host: '127.0.0.1',
    port: 0,
    identity: serverCert,
    caPem: ca.certPem,
    repositories: folders,
    allow: (id) => allowed.includes(id),
  });
  const clients: TransporterBackend[] = [];
  return {
    ca,
    serverCert,
    clientCert,
    server,
    folders,
    connect(overrides = {}) {
      const b = new TransporterBackend({
        host: '127.0.0.1',
        port: server.port,
        repository: 'main',
        identity: clientCert,
        caPem: ca.certPem,
        serverFingerprint: server.fingerprint,
        ...overrides,
      });
      clients.push(b);
      return b;
    },
    async stop() {
      for (const c of clients) await c.close();
      await server.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
