/**
 * Datastore file access over HTTPS `/folder/<path>?dcPath=<dc>&dsName=<ds>`,
 * authenticated with the SOAP session cookie (sent verbatim).
 *
 *  - readRange(): one `Range: bytes=a-b` GET; the answer must be 206 with
 *    exactly the requested bytes (a 200 is only accepted for a whole-file
 *    range), otherwise a typed error. Never buffers more than asked.
 *  - readExtents(): streams a list of extents in order, cut into chunks, with
 *    several Range requests in flight.
 *  - put(): PUT upload (Buffer or stream).
 *  - Direct-to-host: AcquireGenericServiceTicket gives a single-use ticket for
 *    one URL+method; it is sent as cookie `vmware_cgi_ticket` to the ESXi host,
 *    whose certificate is pinned by the SHA-1 thumbprint from the ticket.
 */
import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import type { Ctx } from './context.ts';
import { HttpError, ProtocolError } from './soap/faults.ts';
import { makeConnector, type TrustOptions } from './soap/tls.ts';
import { join, ref, text, typed, val } from './soap/xml.ts';
import type { ChangedArea } from './types.ts';

export interface DatastoreFile {
  /** datacenter inventory path (its name for top-level datacenters) */
  datacenter: string;
  datastore: string;
  /** path inside the datastore, e.g. "app01/app01-flat.vmdk" */
  path: string;
}

// Datastore paths are read the same way by the client and the engine.
export { flatExtentPath, parseDatastorePath } from '@vaultline/contracts';

export interface ServiceTicket {
  id: string;
  hostName?: string | undefined;
  /** SHA-1 thumbprint of the host certificate */
  sslThumbprint?: string | undefined;
}

export interface ReadOptions {
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export class FilesApi {
  private readonly hostAgents = new Map<string, Agent>();
  constructor(
    private readonly ctx: Ctx,
    private readonly opts: TrustOptions & { timeoutMs?: number | undefined },
  ) {}

  /** The /folder URL of a datastore file on the connected server. */
  url(f: DatastoreFile, base?: string): string {
    const u = new URL(base ?? this.ctx.soap.url.toString());
    u.pathname = `/folder/${f.path.split('/').map(encodeURIComponent).join('/')}`;
    u.search = '';
    if (f.datacenter) u.searchParams.set('dcPath', f.datacenter);
    u.searchParams.set('dsName', f.datastore);
    return u.toString();
  }

  /** File size via HEAD (undefined when the server does not say). */
  async size(f: DatastoreFile, opts: ReadOptions = {}): Promise<number | undefined> {
    const res = await this.ctx.soap.http(this.url(f), { method: 'HEAD', ...opts });
    await res.body.dump();
    if (res.statusCode !== 200) throw httpError(res.statusCode, 'HEAD', f);
    const len = res.headers['content-length'];
    return len === undefined ? undefined : Number(len);
  }

  /** Reads [start, start+length) with one Range request. */
  async readRange(f: DatastoreFile, start: number, length: number, opts: ReadOptions = {}): Promise<Buffer> {
    return this.rangeAt(this.url(f), start, length, opts, describe(f));
  }

  /**
   * Reads [start, start+length) with one Range request straight into `into` (at least `length` bytes): the
   * answer's bytes are copied once, from the socket's buffers, with nothing allocated per request. Returns
   * `into.subarray(0, length)`.
   */
  async readRangeInto(f: DatastoreFile, start: number, length: number, into: Buffer, opts: ReadOptions = {}): Promise<Buffer> {
    if (into.length < length) throw new TypeError(`readRangeInto: a buffer of ${into.length} bytes for ${length}`);
    return this.rangeAt(this.url(f), start, length, opts, describe(f), { into });
  }

  /** Range GET on any URL of the connected server (also used for lease device URLs). */
  async rangeAt(url: string, start: number, length: number, opts: ReadOptions, what: string, extra: { cookies?: string[]; withSession?: boolean; agent?: Agent; into?: Buffer } = {}): Promise<Buffer> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length <= 0) throw new TypeError('bad range');
    const headers = { range: `bytes=${start}-${start + length - 1}` };
    const res = extra.agent
      ? await directRequest(extra.agent, url, headers, extra.cookies ?? [], opts.timeoutMs ?? this.opts.timeoutMs ?? 60_000)
      : await this.ctx.soap.http(url, { headers, ...opts, cookies: extra.cookies, withSession: extra.withSession, what: `GET ${what}` });
    if (res.statusCode !== 206 && !(res.statusCode === 200 && start === 0)) {
      const body = (await res.body.text().catch(() => '')).slice(0, 200);
      throw httpError(res.statusCode, `GET bytes ${start}+${length} of`, what, body);
    }
    if (extra.into) {
      // Copy the body's pieces into place; a 200 (whole file from 0) stops after `length` bytes.
      const out = extra.into.subarray(0, length);
      let got = 0;
      try {
        for await (const piece of res.body as AsyncIterable<Buffer>) {
          const n = Math.min(piece.length, length - got);
          if (res.statusCode === 206 && piece.length > n) throw new ProtocolError(`GET ${what}: asked for ${length} bytes at ${start}, got more`);
          piece.copy(out, got, 0, n);
          got += n;
          if (got === length && res.statusCode === 200) break;
        }
      } catch (e) {
        if (e instanceof ProtocolError) throw e;
        throw this.ctx.soap.wrapError(e, `GET ${what}`);
      } finally {
        if (got === length && res.statusCode === 200) res.body.destroy();
      }
      if (got !== length) throw new ProtocolError(res.statusCode === 200 ? `GET ${what}: file has ${got} bytes, wanted ${length}` : `GET ${what}: asked for ${length} bytes at ${start}, got ${got}`);
      return out;
    }
    const buf = Buffer.from(
      await res.body.arrayBuffer().catch((e: unknown) => {
        throw this.ctx.soap.wrapError(e, `GET ${what}`);
      }),
    );
    if (res.statusCode === 200) {
      if (buf.length < length) throw new ProtocolError(`GET ${what}: file has ${buf.length} bytes, wanted ${length}`);
      return buf.subarray(0, length);
    }
    if (buf.length !== length) throw new ProtocolError(`GET ${what}: asked for ${length} bytes at ${start}, got ${buf.length}`);
    return buf;
  }

  /**
   * Streams extents of a file in offset order, `chunkBytes` per request,
   * `concurrency` requests in flight.
   */
  async *readExtents(
    f: DatastoreFile,
    extents: ChangedArea[],
    opts: ReadOptions & { concurrency?: number; chunkBytes?: number } = {},
  ): AsyncGenerator<{ offset: number; data: Buffer }> {
    yield* this.readExtentsAt(this.url(f), extents, opts, describe(f));
  }

  async *readExtentsAt(
    url: string,
    extents: ChangedArea[],
    opts: ReadOptions & { concurrency?: number; chunkBytes?: number },
    what: string,
  ): AsyncGenerator<{ offset: number; data: Buffer }> {
    const chunk = opts.chunkBytes ?? 4 * 1024 * 1024;
    const conc = Math.max(1, opts.concurrency ?? 4);
    const pieces: { offset: number; length: number }[] = [];
    for (const e of extents) {
      for (let o = e.start; o < e.start + e.length; o += chunk) pieces.push({ offset: o, length: Math.min(chunk, e.start + e.length - o) });
    }
    const inflight: Promise<Buffer>[] = [];
    let next = 0;
    const launch = () => {
      const p = pieces[next++]!;
      const pr = this.rangeAt(url, p.offset, p.length, opts, what);
      pr.catch(() => undefined); // surfaced when awaited in order
      inflight.push(pr);
    };
    while (next < pieces.length && inflight.length < conc) launch();
    for (let i = 0; i < pieces.length; i++) {
      const data = await inflight.shift()!;
      if (next < pieces.length) launch();
      yield { offset: pieces[i]!.offset, data };
    }
  }

  /**
   * One whole GET on any URL of the connected server (lease device URLs), read as it arrives: the answer must
   * be 200, and `timeoutMs` bounds each pause, not the transfer. The caller reads the pieces in order and may
   * stop early (`return` on the iterator closes the connection).
   */
  async streamAt(url: string, opts: ReadOptions, what: string): Promise<AsyncIterable<Buffer>> {
    const res = await this.ctx.soap.http(url, { ...opts, streaming: true, what: `GET ${what}` });
    if (res.statusCode !== 200) {
      const body = (await res.body.text().catch(() => '')).slice(0, 200);
      throw httpError(res.statusCode, 'GET', what, body);
    }
    const wrap = (e: unknown) => this.ctx.soap.wrapError(e, `GET ${what}`);
    return {
      async *[Symbol.asyncIterator]() {
        try {
          for await (const piece of res.body as AsyncIterable<Buffer>) yield piece;
        } catch (e) {
          throw wrap(e);
        } finally {
          if (!res.body.destroyed) res.body.destroy();
        }
      },
    };
  }

  /** Whole-file GET (small files: vmx, nvram, descriptors). */
  async get(f: DatastoreFile, opts: ReadOptions & { maxBytes?: number } = {}): Promise<Buffer> {
    const res = await this.ctx.soap.http(this.url(f), { ...opts, what: `GET ${describe(f)}` });
    if (res.statusCode !== 200) throw httpError(res.statusCode, 'GET', f, (await res.body.text().catch(() => '')).slice(0, 200));
    const len = Number(res.headers['content-length'] ?? 0);
    const max = opts.maxBytes ?? 64 * 1024 * 1024;
    if (len > max) {
      await res.body.dump();
      throw new ProtocolError(`GET ${describe(f)}: ${len} bytes is more than the ${max} allowed; use readRange`);
    }
    return Buffer.from(await res.body.arrayBuffer());
  }

  /** PUT upload. */
  async put(f: DatastoreFile, body: Buffer | Uint8Array | Readable, opts: ReadOptions & { size?: number } = {}): Promise<void> {
    const size = Buffer.isBuffer(body) || body instanceof Uint8Array ? body.length : opts.size;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (size !== undefined) headers['content-length'] = String(size);
    const res = await this.ctx.soap.http(this.url(f), { method: 'PUT', headers, body, ...opts, what: `PUT ${describe(f)}` });
    const text = (await res.body.text().catch(() => '')).slice(0, 200);
    if (res.statusCode !== 200 && res.statusCode !== 201 && res.statusCode !== 204) throw httpError(res.statusCode, 'PUT', f, text);
  }

  /** SessionManager.AcquireGenericServiceTicket for one URL and method (single use). */
  async acquireTicket(url: string, method: 'httpGet' | 'httpPut' = 'httpGet'): Promise<ServiceTicket> {
    const r = await this.ctx.soap.returnval(
      'AcquireGenericServiceTicket',
      join([ref('_this', this.ctx.sc().sessionManager), typed('spec', 'SessionManagerHttpServiceRequestSpec', join([val('method', method), val('url', url)]))]),
      { context: `AcquireGenericServiceTicket for ${new URL(url).host}` },
    );
    const id = text(r, 'id');
    if (!id) throw new ProtocolError('AcquireGenericServiceTicket returned no ticket');
    return { id, hostName: text(r, 'hostName'), sslThumbprint: text(r, 'sslThumbprint') };
  }

  /**
   * Direct-to-host Range read: `hostUrl` is https://<esxi>/folder/<path>?dsName=<ds>.
   * Takes a fresh ticket per request (tickets are single use).
   */
  async readRangeDirect(hostUrl: string, start: number, length: number, opts: ReadOptions = {}, into?: Buffer): Promise<Buffer> {
    const t = await this.acquireTicket(hostUrl, 'httpGet');
    const u = new URL(hostUrl);
    // no thumbprint in the ticket and the same endpoint as the session: keep the session's trust
    const agent = !t.sslThumbprint && u.host === this.ctx.soap.url.host ? this.ctx.soap.agent : this.hostAgent(u.host, t.sslThumbprint);
    return this.rangeAt(hostUrl, start, length, opts, `${u.host}${u.pathname}`, { cookies: [`vmware_cgi_ticket=${t.id}`], withSession: false, agent, ...(into ? { into } : {}) });
  }

  /** The /folder URL of a datastore file on an ESXi host itself (its one datacenter is ha-datacenter). */
  hostUrl(host: string, f: Pick<DatastoreFile, 'datastore' | 'path'>): string {
    const u = new URL(`https://${host}/`);
    u.pathname = `/folder/${f.path.split('/').map(encodeURIComponent).join('/')}`;
    u.searchParams.set('dcPath', 'ha-datacenter');
    u.searchParams.set('dsName', f.datastore);
    return u.toString();
  }

  private hostAgent(host: string, sha1: string | undefined): Agent {
    const key = `${host}|${sha1 ?? ''}`;
    let a = this.hostAgents.get(key);
    if (!a) {
      const trust: TrustOptions = sha1 ? { thumbprintSha1: sha1 } : { caPem: this.opts.caPem };
      a = new Agent({ connect: makeConnector(trust, 10_000), connections: 8 });
      this.hostAgents.set(key, a);
    }
    return a;
  }

  async close(): Promise<void> {
    await Promise.all([...this.hostAgents.values()].map((a) => a.close().catch(() => undefined)));
    this.hostAgents.clear();
  }
}

async function directRequest(agent: Agent, url: string, headers: Record<string, string>, cookies: string[], timeoutMs: number) {
  return request(url, {
    dispatcher: agent,
    method: 'GET',
    headers: { ...headers, ...(cookies.length ? { cookie: cookies.join('; ') } : {}) },
    signal: AbortSignal.timeout(timeoutMs),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
}

function describe(f: DatastoreFile | string): string {
  return typeof f === 'string' ? f : `[${f.datastore}] ${f.path}`;
}

function httpError(status: number, op: string, f: DatastoreFile | string, body = ''): HttpError {
  const reason: Record<number, string> = {
    401: 'not authenticated (session cookie or ticket rejected)',
    403: 'permission denied',
    404: 'file not found',
    416: 'range not satisfiable (beyond the end of the file)',
    503: 'server busy',
  };
  return new HttpError(`${op} ${describe(f)} failed: HTTP ${status}${reason[status] ? ` ${reason[status]}` : ''}${body ? `: ${body.replace(/\s+/g, ' ').trim()}` : ''}`, status);
}
