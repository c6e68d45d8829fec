/**
 * "recorded vCenter" test server: a tiny HTTPS server on 127.0.0.1 with a
 * self-signed certificate (made by openssl) that answers SOAP requests from
 * recorded, vCenter-shaped XML fixtures. Each test installs handlers per SOAP
 * method; every request is recorded (method, headers, body).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface Recorded {
  method: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
export interface Reply {
  status?: number;
  body: string;
  headers?: Record<string, string | string[]>;
  /** never answer (tests timeouts) */
  hang?: boolean;
  /** drop the connection without answering */
  reset?: boolean;
}
export type Handler = (req: Recorded, n: number) => Reply;

const FIX = path.join(import.meta.dirname, 'fixtures');
export const fixture = (name: string): string => fs.readFileSync(path.join(FIX, name), 'utf8');

let certCache: { cert: string; key: string } | undefined;
export function selfSignedCert(): { cert: string; key: string } {
  if (certCache) return certCache;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vsphere-fixture-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  certCache = { cert: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'), key: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8') };
  fs.rmSync(dir, { recursive: true, force: true });
  return certCache;
}

/** Wraps a SOAP body in a vCenter-style envelope (xsi prefix, as vCenter writes it). */
export function envelope(inner: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n<soapenv:Body>\n' +
    inner +
    '\n</soapenv:Body>\n</soapenv:Envelope>'
  );
}

export function faultReply(type: string, message: string, detailInner = ''): Reply {
  return {
    status: 500,
    body: envelope(
      `<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>${message}</faultstring>` +
        `<detail><${type}Fault xmlns="urn:vim25" xsi:type="${type}">${detailInner}</${type}Fault></detail></soapenv:Fault>`,
    ),
  };
}

export const ok = (inner: string, headers?: Record<string, string | string[]>): Reply => ({ body: envelope(inner), headers });

export class FixtureServer {
  readonly requests: Recorded[] = [];
  handlers = new Map<string, Handler>();
  /** non-SOAP requests (datastore /folder, lease URLs) */
  httpHandler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  versionsXml: string | undefined = fixture('vimServiceVersions.xml');
  private server!: http.Server;
  private counts = new Map<string, number>();
  url = '';
  thumbprintSha256 = '';
  thumbprintSha1 = '';
  certPem = '';

  /** plain HTTP instead of HTTPS (to test allowHttp) */
  async start(opts: { plain?: boolean } = {}): Promise<this> {
    const { cert, key } = selfSignedCert();
    this.certPem = cert;
    this.thumbprintSha256 = new X509Certificate(cert).fingerprint256;
    this.thumbprintSha1 = new X509Certificate(cert).fingerprint;
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (req.method === 'GET' && req.url === '/sdk/vimServiceVersions.xml') {
          if (!this.versionsXml) {
            res.writeHead(404).end();
            return;
          }
          res.writeHead(200, { 'content-type': 'text/xml' }).end(this.versionsXml);
          return;
        }
        if (!req.url?.startsWith('/sdk') && this.httpHandler) {
          this.requests.push({ method: `${req.method} ${req.url}`, headers: req.headers, body });
          this.httpHandler(req, res);
          return;
        }
        const method = /<soapenv:Body><(\w+)/.exec(body)?.[1] ?? `${req.method} ${req.url}`;
        const rec: Recorded = { method, headers: req.headers, body };
        this.requests.push(rec);
        const n = (this.counts.get(method) ?? 0) + 1;
        this.counts.set(method, n);
        const h = this.handlers.get(method) ?? this.handlers.get('*');
        const reply = h ? h(rec, n) : faultReply('MethodNotFound', `no fixture for ${method}`);
        if (reply.hang) return;
        if (reply.reset) {
          req.socket.destroy();
          return;
        }
        res.writeHead(reply.status ?? 200, { 'content-type': 'text/xml; charset=utf-8', ...(reply.headers ?? {}) });
        res.end(reply.body);
      });
    };
    this.server = opts.plain ? http.createServer(handler) : https.createServer({ cert, key }, handler);
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `${opts.plain ? 'http' : 'https'}://127.0.0.1:${(this.server.address() as AddressInfo).port}/sdk`;
    return this;
  }

  on(method: string, h: Handler | Reply): this {
    this.handlers.set(method, typeof h === 'function' ? h : () => h);
    return this;
  }

  calls(method: string): Recorded[] {
    return this.requests.filter((r) => r.method === method);
  }

  /** Handlers for connect(): service content + login with a quoted vCenter cookie. */
  withLogin(cookie = 'vmware_soap_session="52f1b1e2-3c4d-4e5f-8a9b-0c1d2e3f4a5b"'): this {
    this.on('RetrieveServiceContent', ok(fixture('RetrieveServiceContent.xml')));
    this.on('Login', (r) =>
      /<password>right<\/password>/.test(r.body)
        ? ok(fixture('Login.xml'), { 'set-cookie': `${cookie}; Path=/; HttpOnly; Secure;` })
        : faultReply('InvalidLogin', 'Cannot complete login due to an incorrect user name or password.'),
    );
    this.on('Logout', ok('<LogoutResponse xmlns="urn:vim25"></LogoutResponse>'));
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
