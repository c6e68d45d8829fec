/**
 * A deliberately tiny SOAP/HTTPS client for talking to the lab from its own
 * harness and tests. It is NOT the project's vSphere client (packages/vsphere);
 * it builds request XML by hand and pulls values out of responses with regular
 * expressions, which is enough for the lab's fixed, known responses.
 * Type attributes arrive as `XMLSchema-instance:type` (vcsim) or `xsi:type`
 * (faults), so helpers match any `prefix:type`.
 */
import https from 'node:https';
import http from 'node:http';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP(S) request; `ca` pins the lab certificate (real verification). */
export function httpRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; ca?: string; agent?: http.Agent } = {},
): Promise<HttpResult> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      { method: opts.method ?? 'GET', headers: opts.headers, ca: opts.ca, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export class SoapFault extends Error {
  constructor(
    readonly faultType: string,
    message: string,
    readonly xml: string,
  ) {
    super(`${faultType}: ${message}`);
  }
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function unescape(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
}

/** Text of the first <tag>…</tag> (no nesting of the same tag assumed). */
export function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`).exec(xml);
  return m?.[1] === undefined ? undefined : unescape(m[1]);
}

/** Texts of every <tag>…</tag>. */
export function tags(xml: string, name: string): string[] {
  const re = new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`, 'g');
  return [...xml.matchAll(re)].map((m) => unescape(m[1] ?? ''));
}

/** Reads the fault type (e.g. "InvalidArgument") from a fault or TaskInfo.error. */
export function faultType(xml: string): string {
  const m = /<(?:fault|[A-Za-z]+Fault)\b[^>]*?:type="([^"]+)"/.exec(xml);
  return m?.[1] ?? 'UnknownFault';
}

export class SoapClient {
  private cookie: string | undefined;
  /** The service's own managed objects (a vCenter's and a standalone ESXi host's are named differently). */
  private service: { sessionManager: string; propertyCollector: string } | undefined;

  constructor(
    readonly url: string,
    private readonly ca?: string,
  ) {}

  async call(body: string): Promise<string> {
    const envelope =
      `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
      `xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:vim25">` +
      `<soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;
    const headers: Record<string, string> = { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: 'urn:vim25/6.5' };
    if (this.cookie) headers.Cookie = this.cookie;
    const res = await httpRequest(this.url, { method: 'POST', headers, body: envelope, ca: this.ca });
    const setCookie = res.headers['set-cookie']?.[0];
    if (setCookie) this.cookie = setCookie.split(';')[0];
    const text = res.body.toString('utf8');
    if (res.status !== 200 || text.includes('Fault>')) {
      if (/<(?:soapenv:|soap:)?Fault>/.test(text) || res.status === 500) {
        throw new SoapFault(faultType(text), tag(text, 'faultstring') ?? `HTTP ${res.status}`, text);
      }
    }
    return text;
  }

  /** RetrieveServiceContent, once: the morefs of the session manager and the property collector. */
  private async serviceContent(): Promise<{ sessionManager: string; propertyCollector: string }> {
    if (!this.service) {
      const xml = await this.call('<RetrieveServiceContent><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>');
      this.service = { sessionManager: tag(xml, 'sessionManager') ?? 'SessionManager', propertyCollector: tag(xml, 'propertyCollector') ?? 'propertyCollector' };
    }
    return this.service;
  }

  async login(username: string, password: string): Promise<void> {
    const { sessionManager } = await this.serviceContent();
    await this.call(
      `<Login><_this type="SessionManager">${xmlEscape(sessionManager)}</_this><userName>${xmlEscape(username)}</userName>` +
        `<password>${xmlEscape(password)}</password></Login>`,
    );
  }

  /** RetrievePropertiesEx for one object; returns the raw response. */
  async retrieve(type: string, moref: string, paths: string[]): Promise<string> {
    const { propertyCollector } = await this.serviceContent();
    return this.call(
      `<RetrievePropertiesEx><_this type="PropertyCollector">${xmlEscape(propertyCollector)}</_this><specSet><propSet><type>${type}</type>` +
        paths.map((p) => `<pathSet>${p}</pathSet>`).join('') +
        `</propSet><objectSet><obj type="${type}">${xmlEscape(moref)}</obj></objectSet></specSet><options/></RetrievePropertiesEx>`,
    );
  }

  /**
   * Waits for a task: the lab runs snapshot tasks in the background (running, with progress), others finish
   * at once. `onInfo` sees every state/progress polled. Returns the result text; throws SoapFault on error.
   */
  async waitTask(task: string, opts: { timeoutMs?: number; onInfo?: (info: { state: string; progress?: number }) => void } = {}): Promise<string> {
    const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
    for (;;) {
      const xml = await this.retrieve('Task', task, ['info']);
      const state = tag(xml, 'state') ?? 'queued';
      const progress = tag(xml, 'progress');
      opts.onInfo?.({ state, ...(progress !== undefined ? { progress: Number(progress) } : {}) });
      if (state === 'success') return tag(xml, 'result') ?? '';
      if (state === 'error') {
        const err = tag(xml, 'error') ?? xml;
        throw new SoapFault(faultType(err), tag(err, 'localizedMessage') ?? 'task failed', xml);
      }
      if (Date.now() > deadline) throw new Error(`task ${task} did not finish (still ${state})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Calls a *_Task method and waits for it. */
  async task(body: string): Promise<string> {
    const xml = await this.call(body);
    const ref = tag(xml, 'returnval');
    if (!ref) throw new Error(`no task in response: ${xml.slice(0, 500)}`);
    return this.waitTask(ref);
  }
}
