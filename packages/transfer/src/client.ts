/**
 * A repository on another Transporter, as a Backend: the repository code runs here (keys,
 * compression, encryption) and only sealed bytes cross the wire to the RepositoryServer there.
 *
 * The connection is mutual TLS: this side presents its Transporter certificate, and trusts the
 * server only when its certificate has the pinned fingerprint and was issued by the Transporter CA.
 * Calls share a few keep-alive sockets, so the repository's concurrent pack uploads and range reads
 * run side by side instead of one after another.
 */
import https from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { CorruptDataError, ID_BYTES, ImmutableError, NotFoundError, RepositoryError, RepositoryFullError } from '@vaultline/repository';
import type { Backend, FileStat, FileWriter } from '@vaultline/repository';
import { pinnedAgent } from '@vaultline/tls';
import { END_TRAILER, LACKING_BATCH } from './protocol.ts';
import type { Op, WireError } from './protocol.ts';

export interface TransporterBackendOptions {
  host: string;
  port: number;
  /** The repository's name on the serving Transporter. */
  repository: string;
  /** This Transporter's certificate from the Transporter CA: what the server authorises. */
  identity: { certPem: string; keyPem: string };
  caPem: string;
  /** SHA-256 of the serving Transporter's certificate (`AB:CD:…`, as certificateFingerprint gives it). */
  serverFingerprint: string;
  /** Keep-alive sockets to the server (default 8): how many calls run at once. */
  sockets?: number;
}

/** The server refused a call for a reason of its own (403 not allowed, 400 a bad path, ...). */
export class TransferError extends RepositoryError {
  constructor(
    readonly status: number,
    /** The server's code: FORBIDDEN, INVALID_ARGUMENT, NO_SUCH_REPOSITORY, BACKEND, ... */
    readonly remoteCode: string,
    message: string,
  ) {
    super('BACKEND', message);
  }
}

/** The server's certificate has the pinned fingerprint but was not issued by the Transporter CA. */
export class UntrustedServerError extends Error {
  constructor(host: string, reason: string) {
    super(`the TLS certificate of ${host} was not issued by the Transporter CA: ${reason}`);
    this.name = 'UntrustedServerError';
  }
}

/** Back to the repository's error classes, so the code above a TransporterBackend sees what it would see locally. */
function errorFrom(status: number, body: Buffer, what: string, location: string): Error {
  let wire: WireError;
  try {
    wire = JSON.parse(body.toString()) as WireError;
  } catch {
    wire = { code: 'BACKEND', message: `HTTP ${status}` };
  }
  const message = `${location}: ${wire.message}`;
  if (wire.code === 'NOT_FOUND') return new NotFoundError(what);
  if (wire.code === 'NO_SPACE') return new RepositoryFullError(message);
  if (wire.code === 'CORRUPT') return new CorruptDataError(message);
  if (wire.code === 'IMMUTABLE') return new ImmutableError(message);
  return new TransferError(status, wire.code, message);
}

interface Reply {
  status: number;
  body: Buffer;
}

export class TransporterBackend implements Backend {
  readonly kind = 'transporter';
  /** Locks are not carried over the wire yet: a job keeping immutable restore points is refused here rather than silently unlocked. */
  readonly cannotLock = 'a repository served by another Transporter cannot make restore points immutable yet (the serving side does not lock files); keep immutable restore points in a local hardened or S3 Object Lock repository';
  readonly location: string;
  /** Payload bytes sent (request bodies) and received (response bodies) so far. */
  sent = 0;
  received = 0;
  /** Short calls share `sockets` connections. */
  private readonly calls: https.Agent;
  /**
   * Each open writer holds a connection of its own until commit: were they drawn from the same few
   * sockets, writers kept open while their producer waits on another call would starve that call.
   */
  private readonly uploads: https.Agent;

  constructor(private readonly opts: TransporterBackendOptions) {
    this.location = `transporter://${opts.host}:${opts.port}/${opts.repository}`;
    this.calls = this.agent(opts.sockets ?? 8);
    this.uploads = this.agent(Infinity);
  }

  private agent(maxSockets: number): https.Agent {
    const { identity, caPem, host, port } = this.opts;
    const agent = pinnedAgent(this.opts.serverFingerprint, {
      cert: identity.certPem,
      key: identity.keyPem,
      ca: [caPem],
      minVersion: 'TLSv1.3',
      maxSockets,
      // Shorter than the server's keepAliveTimeout: an idle socket is closed here first, never reused as it closes there.
      timeout: 60_000,
    });
    // pinnedAgent checks the fingerprint and leaves the chain unverified; the chain is verified
    // against the CA all the same, so a pinned certificate the CA did not issue is refused too.
    type Callback = (err: Error | null, socket?: TLSSocket) => void;
    const connect = agent.createConnection.bind(agent) as (options: object, callback: Callback) => void;
    agent.createConnection = ((options: object, callback: Callback) => {
      connect(options, (err, socket) => {
        if (err || !socket) return callback(err);
        if (socket.authorized) return callback(null, socket);
        socket.destroy();
        callback(new UntrustedServerError(`${host}:${port}`, String(socket.authorizationError)));
      });
      return undefined;
    }) as unknown as https.Agent['createConnection'];
    return agent;
  }

  private request(method: string, op: Op, params: Record<string, string | number>, headers: Record<string, string | number>): ClientRequest {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) search.set(k, String(v));
    const query = search.toString();
    return https.request({
      host: this.opts.host,
      port: this.opts.port,
      method,
      path: `/r/${encodeURIComponent(this.opts.repository)}/${op}${query ? `?${query}` : ''}`,
      agent: op === 'upload' ? this.uploads : this.calls,
      headers,
    });
  }

  /**
   * The whole response body; into `into` when given (no copy beyond the socket's). A body longer
   * than `into` is an error, a shorter one is returned as the part of `into` it filled.
   */
  private reply(req: ClientRequest, into?: Buffer): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      req.once('error', reject);
      req.once('response', (res: IncomingMessage) => {
        const ok = res.statusCode !== undefined && res.statusCode < 300;
        const length = Number(res.headers['content-length'] ?? NaN);
        // Errors are small JSON; a body of a known length goes into one buffer of that length.
        let buf = ok ? (into ?? (Number.isSafeInteger(length) ? Buffer.allocUnsafe(length) : null)) : null;
        const parts: Buffer[] = [];
        let got = 0;
        res.on('data', (chunk: Buffer) => {
          this.received += chunk.length;
          if (buf && got + chunk.length > buf.length) {
            res.destroy(new CorruptDataError(`${this.location}: the answer is longer than the ${buf.length} bytes expected`));
            return;
          }
          if (buf) chunk.copy(buf, got);
          else parts.push(chunk);
          got += chunk.length;
        });
        res.once('error', reject);
        res.once('end', () => {
          if (!res.complete) return reject(new Error(`${this.location}: the connection broke off mid-answer`));
          if (!buf) buf = Buffer.concat(parts);
          resolve({ status: res.statusCode ?? 0, body: buf.subarray(0, got) });
        });
      });
    });
  }

  /** One call with a small body (or none); a refusal is thrown as the repository's error for `what`. */
  private async call(method: string, op: Op, params: Record<string, string | number>, body?: Uint8Array, into?: Buffer): Promise<Reply> {
    const req = this.request(method, op, params, body ? { 'content-length': body.length, 'content-type': 'application/octet-stream' } : {});
    const reply = this.reply(req, into);
    if (body) this.sent += body.length;
    req.end(body);
    const r = await reply;
    if (r.status >= 300) throw errorFrom(r.status, r.body, String(params.path ?? ''), this.location);
    return r;
  }

  async readFile(path: string): Promise<Buffer> {
    return (await this.call('GET', 'file', { path })).body;
  }

  async readRange(path: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const target = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    const { body } = await this.call('GET', 'range', { path, offset, length }, undefined, target);
    if (body.length !== length) throw new CorruptDataError(`short read: ${path} gave ${body.length} of ${length} bytes at ${offset} from ${this.location}`);
    return body;
  }

  async writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
    const w = await this.openWriter(path);
    try {
      await w.write(data);
      await w.commit();
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  async createExclusive(path: string, data: Uint8Array): Promise<boolean> {
    return (await this.call('POST', 'create', { path }, data)).status === 201;
  }

  /**
   * One upload request for the whole file. Each write resolves once its bytes are handed to the
   * socket, so the caller may reuse its buffer and a slow server holds the writer back; the
   * END_TRAILER says whether the server names the file (commit) or discards it (abort).
   */
  async openWriter(path: string): Promise<FileWriter> {
    const req = this.request('PUT', 'upload', { path }, { 'content-type': 'application/octet-stream', trailer: END_TRAILER });
    const reply = this.reply(req);
    // Any answer before the trailer is a refusal (403, ENOSPC, ...), and so is a broken connection: it fails the next write.
    let failure: Error | null = null;
    const broken = reply
      .then((r) => errorFrom(r.status, r.body, path, this.location), (err: unknown) => err as Error)
      .then((err) => {
        failure = err;
        throw err;
      });
    broken.catch(() => undefined);
    let size = 0;
    let ended = false;
    const send = (chunk: Uint8Array) => Promise.race([new Promise<void>((resolve, reject) => req.write(chunk, (err) => (err ? reject(err) : resolve()))), broken]);
    const fail = (err: unknown): never => {
      ended = true;
      req.destroy();
      throw failure ?? err;
    };
    const location = this.location;
    const count = (bytes: number) => {
      this.sent += bytes;
    };
    return {
      get size() {
        return size;
      },
      async write(data: Uint8Array, pad = 0) {
        if (ended) throw new Error(`${location}: write to ${path} after commit or abort`);
        if (failure) fail(failure);
        try {
          if (pad > 0) await send(Buffer.alloc(pad));
          if (data.length > 0) await send(data);
        } catch (err) {
          fail(err);
        }
        size += pad + data.length;
        count(pad + data.length);
      },
      async commit() {
        if (ended) throw new Error(`${location}: commit of ${path} after commit or abort`);
        if (failure) fail(failure);
        ended = true;
        req.addTrailers({ [END_TRAILER]: `commit ${size}` });
        req.end();
        const r = await reply;
        if (r.status >= 300) throw errorFrom(r.status, r.body, path, location);
      },
      async abort() {
        if (ended) return;
        ended = true;
        if (failure) {
          req.destroy();
          return;
        }
        // Waits for the server to discard the file, so it is gone when abort() returns.
        req.addTrailers({ [END_TRAILER]: 'abort' });
        req.end();
        await reply.catch(() => undefined);
      },
    };
  }

  async list(dir: string): Promise<string[]> {
    return JSON.parse((await this.call('GET', 'list', { path: dir })).body.toString()) as string[];
  }

  async stat(path: string): Promise<FileStat | null> {
    return JSON.parse((await this.call('GET', 'stat', { path })).body.toString()) as FileStat | null;
  }

  async remove(path: string): Promise<void> {
    await this.call('DELETE', 'file', { path });
  }

  async removeDir(path: string): Promise<void> {
    await this.call('DELETE', 'dir', { path });
  }

  async mkdirp(dir: string): Promise<void> {
    await this.call('POST', 'mkdir', { path: dir });
  }

  /**
   * Which of these chunk ids (32 bytes each, as Buffers or back to back) the repository lacks, in
   * order. Asked LACKING_BATCH ids at a time, the batches side by side over the agent's sockets.
   */
  async lacking(ids: Buffer[] | Uint8Array): Promise<boolean[]> {
    const all = Array.isArray(ids) ? Buffer.concat(ids) : Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength);
    if (all.length % ID_BYTES !== 0 || (Array.isArray(ids) && ids.some((id) => id.length !== ID_BYTES))) throw new RangeError(`chunk ids are ${ID_BYTES} bytes each`);
    const n = all.length / ID_BYTES;
    const batches: Array<Promise<Buffer>> = [];
    for (let i = 0; i < n; i += LACKING_BATCH) {
      const body = all.subarray(i * ID_BYTES, Math.min(n, i + LACKING_BATCH) * ID_BYTES);
      batches.push(this.call('POST', 'lacking', {}, body).then((r) => r.body));
    }
    const bitmaps = await Promise.all(batches);
    return Array.from({ length: n }, (_, i) => {
      const bits = bitmaps[Math.floor(i / LACKING_BATCH)]!;
      const j = i % LACKING_BATCH;
      return ((bits[j >> 3] ?? 0) & (1 << (j & 7))) !== 0;
    });
  }

  async close(): Promise<void> {
    this.calls.destroy();
    this.uploads.destroy();
  }
}
