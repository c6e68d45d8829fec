/**
 * SOAP 1.1 transport for vim25 over undici (keep-alive pool per endpoint).
 *
 *  - SOAPAction is `urn:vim25/<version>`; the version is negotiated from
 *    /sdk/vimServiceVersions.xml (highest version the server lists that this
 *    client knows), falling back to a conservative default.
 *  - HTTP 200 and 500 carry SOAP bodies (500 = Fault); any other status is a
 *    ProtocolError. Faults are mapped to the typed VimFault classes.
 *  - Cookies: every Set-Cookie `name=value` pair is stored byte for byte and
 *    sent back verbatim (vCenter quotes the session value, the simulator does
 *    not; re-quoting or unquoting breaks the session).
 *  - NotAuthenticated triggers the registered re-authenticator once (shared by
 *    concurrent callers) and the call is retried once.
 *  - Every request has a deadline (connect, headers, body and overall).
 *  - Safety: a request body that would ask vSphere to destroy a device's
 *    backing file is refused here, whatever code built it.
 */
import { Agent, request, type Dispatcher } from 'undici';
import {
  ClientSafetyError,
  HttpError,
  makeFault,
  NotAuthenticated,
  ProtocolError,
  TimeoutError,
  VSphereError,
  type VimFault,
} from './faults.ts';
import { checkScheme, makeConnector, translateConnectError, type TrustOptions } from './tls.ts';
import { child, children, parseXml, SOAPENV_NS, text, type Xml, type XmlNode } from './xml.ts';

/** vim25 versions this client knows, oldest first. */
export const KNOWN_VERSIONS = ['6.0', '6.5', '6.7', '6.7.1', '6.7.2', '6.7.3', '7.0', '7.0.1.0', '7.0.2.0', '7.0.3.0', '8.0.0.0', '8.0.1.0', '8.0.2.0', '8.0.3.0'];
export const FALLBACK_VERSION = '6.5';

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number(x) || 0);
  const pb = b.split('.').map((x) => Number(x) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/** Picks the highest version offered by the server that is not newer than what we know. */
export function pickVersion(offered: string[]): string | undefined {
  const max = KNOWN_VERSIONS[KNOWN_VERSIONS.length - 1]!;
  const ok = offered.filter((v) => compareVersions(v, max) <= 0).sort(compareVersions);
  return ok[ok.length - 1];
}

export interface SoapClientOptions extends TrustOptions {
  /** https://host[:port]/sdk */
  url: string;
  /** default deadline of one call, ms (default 60 s) */
  timeoutMs?: number | undefined;
  /** TCP+TLS connect deadline, ms (default 10 s) */
  connectTimeoutMs?: number | undefined;
  /** max parallel connections to the endpoint (default 8) */
  connections?: number | undefined;
  /** observes every SOAP request (method, body with the password redacted) */
  onRequest?: ((method: string, body: string) => void) | undefined;
}

export interface CallOptions {
  timeoutMs?: number | undefined;
  /** for messages: what is being done, e.g. "CreateSnapshot_Task on vm-42" */
  context?: string | undefined;
  /** do not re-login and retry on NotAuthenticated (Login/Logout themselves) */
  noReauth?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

export interface HttpOptions {
  method?: 'GET' | 'PUT' | 'POST' | 'HEAD' | 'DELETE' | undefined;
  headers?: Record<string, string> | undefined;
  body?: Dispatcher.DispatchOptions['body'];
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** send the session cookie (default true); false for ticket-authenticated requests */
  withSession?: boolean | undefined;
  /**
   * A long download read as it arrives: `timeoutMs` bounds the wait for the answer's headers and then each
   * pause of the body, not the whole transfer (default: one deadline for the whole request).
   */
  streaming?: boolean | undefined;
  /** extra cookie pairs, e.g. `vmware_cgi_ticket=…` */
  cookies?: string[] | undefined;
}

const REDACT = /<password>[\s\S]*?<\/password>/g;

export class SoapClient {
  readonly url: URL;
  readonly agent: Agent;
  version = FALLBACK_VERSION;
  private readonly cookies = new Map<string, string>();
  private readonly timeoutMs: number;
  private readonly onRequest: SoapClientOptions['onRequest'];
  private reauth: (() => Promise<void>) | undefined;
  private reauthInFlight: Promise<void> | undefined;
  /** incremented by every transparent re-login (session-scoped objects such as views are gone then) */
  sessionEpoch = 0;

  constructor(opts: SoapClientOptions) {
    const url = new URL(opts.url);
    checkScheme(url, opts.allowHttp);
    if (url.username || url.password) {
      url.username = '';
      url.password = '';
    }
    if (url.pathname === '/' || url.pathname === '') url.pathname = '/sdk';
    this.url = url;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.onRequest = opts.onRequest;
    const connectTimeout = Math.min(opts.connectTimeoutMs ?? 10_000, this.timeoutMs);
    this.agent = new Agent({
      connect: makeConnector(opts, connectTimeout),
      connections: opts.connections ?? 8,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 120_000,
      pipelining: 1,
    });
  }

  get host(): string {
    return this.url.host;
  }

  /** Installs the function that logs in again after NotAuthenticated. */
  setReauthenticator(fn: (() => Promise<void>) | undefined): void {
    this.reauth = fn;
  }

  /** The cookie header value as sent (contains the session secret: never log it). */
  cookieHeader(): string | undefined {
    return this.cookies.size ? [...this.cookies.values()].join('; ') : undefined;
  }

  /** The session cookie's raw value, e.g. `"52ab…"` with the quotes if the server sent them. */
  sessionCookie(): string | undefined {
    const pair = this.cookies.get('vmware_soap_session');
    return pair?.slice(pair.indexOf('=') + 1);
  }

  clearCookies(): void {
    this.cookies.clear();
  }

  /** Stores Set-Cookie pairs exactly as received (attributes dropped). */
  private storeCookies(setCookie: string | string[] | undefined): void {
    if (!setCookie) return;
    for (const sc of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const pair = sc.split(';')[0]?.trim();
      if (!pair || !pair.includes('=')) continue;
      const name = pair.slice(0, pair.indexOf('=')).trim();
      this.cookies.set(name, pair);
    }
  }

  /** GET /sdk/vimServiceVersions.xml and pick the SOAPAction version. */
  async negotiateVersion(): Promise<string> {
    const u = new URL(this.url);
    u.pathname = `${u.pathname.replace(/\/$/, '')}/vimServiceVersions.xml`;
    try {
      const res = await this.http(u.toString(), { withSession: false, timeoutMs: Math.min(this.timeoutMs, 15_000) });
      const body = await res.body.text();
      if (res.statusCode !== 200) return this.version;
      const doc = parseXml(body, 'vimServiceVersions.xml');
      for (const ns of children(doc, 'namespace')) {
        if (text(ns, 'name')?.trim() !== 'urn:vim25') continue;
        const offered = [text(ns, 'version'), ...children(child(ns, 'priorVersions'), 'version').map((v) => v.text)]
          .filter((v): v is string => !!v)
          .map((v) => v.trim());
        const v = pickVersion(offered);
        if (v) this.version = v;
      }
    } catch (e) {
      // Connection/TLS problems are real errors; a missing or odd document is not.
      if (!(e instanceof ProtocolError) && !(e instanceof HttpError)) throw e;
    }
    return this.version;
  }

  /**
   * Calls a vim25 method. `body` is the escaped content of the method element
   * (starting with `<_this …>`). Returns the `<MethodResponse>` element.
   */
  async call(method: string, body: Xml, opts: CallOptions = {}): Promise<XmlNode> {
    if (!/^\w+$/.test(method)) throw new TypeError(`bad method name ${method}`);
    const epoch = this.sessionEpoch;
    try {
      return await this.callOnce(method, body, opts);
    } catch (e) {
      if (e instanceof NotAuthenticated && !opts.noReauth && this.reauth) {
        // if another caller renewed the session meanwhile, just retry with the new cookie
        if (!this.reauthInFlight && this.sessionEpoch === epoch) {
          this.reauthInFlight = this.reauth()
            .then(() => {
              this.sessionEpoch++;
            })
            .finally(() => {
              this.reauthInFlight = undefined;
            });
        }
        if (this.reauthInFlight) await this.reauthInFlight;
        return this.callOnce(method, body, opts);
      }
      throw e;
    }
  }

  /** Calls a method and returns its `returnval` elements. */
  async returnvals(method: string, body: Xml, opts: CallOptions = {}): Promise<XmlNode[]> {
    return children(await this.call(method, body, opts), 'returnval');
  }

  /** Calls a method and returns its single `returnval` (undefined when absent). */
  async returnval(method: string, body: Xml, opts: CallOptions = {}): Promise<XmlNode | undefined> {
    return child(await this.call(method, body, opts), 'returnval');
  }

  private async callOnce(method: string, body: Xml, opts: CallOptions): Promise<XmlNode> {
    if (/<fileOperation>\s*destroy\s*<\/fileOperation>/.test(body)) {
      throw new ClientSafetyError(`refusing to send ${method} with fileOperation=destroy: Vaultline never deletes disk files through a device change`);
    }
    const envelope =
      '<?xml version="1.0" encoding="UTF-8"?>' +
      '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
      `<soapenv:Body><${method} xmlns="urn:vim25">${body}</${method}></soapenv:Body></soapenv:Envelope>`;
    this.onRequest?.(method, body.replace(REDACT, '<password>***</password>'));
    const context = opts.context ?? method;
    const headers: Record<string, string> = {
      'content-type': 'text/xml; charset="utf-8"',
      soapaction: `urn:vim25/${this.version}`,
    };
    const res = await this.http(this.url.toString(), {
      method: 'POST',
      headers,
      body: envelope,
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      what: context,
    });
    this.storeCookies(res.headers['set-cookie']);
    let xml: string;
    try {
      xml = await res.body.text();
    } catch (e) {
      throw this.wrapError(e, context);
    }
    if (res.statusCode !== 200 && res.statusCode !== 500) {
      throw new ProtocolError(`${context}: unexpected HTTP ${res.statusCode} from ${this.host}${xml ? `: ${xml.slice(0, 200)}` : ''}`);
    }
    const doc = parseXml(xml, `the ${method} response`);
    const bodyEl = doc.children.find((c) => c.name === 'Body' && c.ns === SOAPENV_NS);
    if (doc.name !== 'Envelope' || !bodyEl) throw new ProtocolError(`${context}: response is not a SOAP envelope`);
    const faultEl = bodyEl.children.find((c) => c.name === 'Fault');
    if (faultEl) throw parseSoapFault(faultEl, context);
    const resp = bodyEl.children[0];
    if (!resp) throw new ProtocolError(`${context}: empty SOAP body`);
    return resp;
  }

  /** An HTTP request on the shared pool, with cookies and a deadline. */
  async http(url: string, opts: HttpOptions & { what?: string } = {}): Promise<Dispatcher.ResponseData> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const cookies: string[] = [];
    if (opts.withSession !== false) {
      const c = this.cookieHeader();
      if (c) cookies.push(c);
    }
    if (opts.cookies) cookies.push(...opts.cookies);
    if (cookies.length) headers.cookie = cookies.join('; ');
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    const signal = opts.signal ? AbortSignal.any([deadline.signal, opts.signal]) : deadline.signal;
    const what = opts.what ?? `${opts.method ?? 'GET'} ${new URL(url).pathname}`;
    try {
      const res = await request(url, {
        dispatcher: this.agent,
        method: opts.method ?? 'GET',
        headers,
        body: opts.body ?? null,
        signal,
        // the overall deadline (signal) fires first and gives the clearer message
        headersTimeout: timeoutMs + 1000,
        bodyTimeout: opts.streaming ? timeoutMs : timeoutMs + 1000,
      });
      // A streamed body may take as long as it needs, as long as it keeps coming (bodyTimeout).
      if (opts.streaming) clearTimeout(timer);
      else timer.unref();
      return res;
    } catch (e) {
      clearTimeout(timer);
      if (deadline.signal.aborted) throw new TimeoutError(`${what}: no answer from ${this.host} within ${timeoutMs} ms`, { cause: e });
      throw this.wrapError(e, what);
    }
  }

  wrapError(e: unknown, what: string): Error {
    if (e instanceof VSphereError) return e;
    const err = e as { code?: string; name?: string; message?: string };
    if (err?.name === 'AbortError' || err?.code === 'ABORT_ERR') return e as Error;
    if (err?.code === 'UND_ERR_HEADERS_TIMEOUT' || err?.code === 'UND_ERR_BODY_TIMEOUT' || err?.name === 'TimeoutError') {
      return new TimeoutError(`${what}: ${this.host} did not answer in time`, { cause: e });
    }
    const cause = (e as { cause?: unknown }).cause;
    if (cause instanceof VSphereError) return cause;
    const mapped = translateConnectError(cause && (cause as { code?: string }).code ? cause : e, this.host);
    if (mapped instanceof VSphereError) {
      if (!mapped.message.includes(what)) mapped.message = `${what}: ${mapped.message}`;
    }
    return mapped;
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }
}

/** Turns a `<soapenv:Fault>` into a typed error. */
export function parseSoapFault(faultEl: XmlNode, context: string): VimFault {
  const faultstring = text(faultEl, 'faultstring') ?? '';
  const detail = child(faultEl, 'detail');
  const d = detail?.children[0];
  const faultType = d?.xsiType ?? (d ? d.name.replace(/Fault$/, '') : 'SystemError');
  return makeFault({ faultType, serverMessage: faultstring, context, detail: d });
}

/** Turns a `LocalizedMethodFault` (task info.error) into a typed error. */
export function parseLocalizedFault(err: XmlNode, context: string): VimFault {
  const f = child(err, 'fault');
  const faultType = f?.xsiType ?? 'SystemError';
  const msg = text(err, 'localizedMessage') ?? text(f, 'faultMessage') ?? '';
  return makeFault({ faultType, serverMessage: msg, context, detail: f });
}
