/**
 * The repository-side Transporter: serves repository folders on this machine to other Transporters
 * over mutually authenticated TLS. The client holds the repository's keys and sends only sealed
 * bytes, so this side stores opaque files and never sees a passphrase.
 *
 * Storage goes through LocalBackend itself, so a file written here is durable exactly as one written
 * by a local backup (tmp file, fsync, rename, fsync of the directory; createExclusive by link()).
 * writeFileAtomic arrives as an upload like a pack's, into a FileWriter (the same four steps), and
 * whole files are read by streaming from an open file, so no call holds a whole file in memory.
 * HTTP/1.1 rather than HTTP/2: on loopback a 256 MiB upload was faster in 7 of 8 runs, by about a
 * fifth (no flow-control windows to fill), and the client spreads concurrent calls over several
 * keep-alive sockets anyway.
 */
import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { CorruptDataError, ID_BYTES, LocalBackend, NotFoundError, RepositoryError, classifyFsError } from '@vaultline/repository';
import { certificateFingerprint } from '@vaultline/tls';
import { BlobIds } from './blob-ids.ts';
import { transporterIdOf } from '@vaultline/tls';
import { END_TRAILER, LACKING_BATCH, MAX_CREATE_BYTES, REPOSITORY_NAME, SLICE_BYTES, pathProblem } from './protocol.ts';
import type { Op, WireError } from './protocol.ts';

export interface RepositoryServerOptions {
  host: string;
  /** 0: any free port (see `port` of the answer). */
  port: number;
  /** This Transporter's certificate from the Transporter CA (issueTransporterCertificate). */
  identity: { certPem: string; keyPem: string };
  /** The Transporter CA: only clients with a certificate it signed get past the handshake. */
  caPem: string;
  /** Name → absolute folder of each repository served. */
  repositories: Record<string, string>;
  /** Whether the Transporter of a client certificate may use this repository (asked on every request). */
  allow: (transporterId: string, repository: string) => boolean;
}

/** Thrown inside a request to answer with `status` and `{ code, message }`. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const badRequest = (message: string) => new Refusal(400, 'INVALID_ARGUMENT', message);

/** Statuses of the repository's own errors; anything else the client sees as a backend error (500). */
const STATUS: Record<string, number> = { NOT_FOUND: 404, CORRUPT: 422, IMMUTABLE: 409, NO_SPACE: 507 };

function wireError(err: unknown): { status: number; body: WireError } {
  if (err instanceof Refusal) return { status: err.status, body: { code: err.code, message: err.message } };
  // An errno error of LocalBackend that it did not classify itself (list, stat): ENOSPC, ENOENT.
  const classified = classifyFsError(err, '');
  if (classified instanceof RepositoryError) return { status: STATUS[classified.code] ?? 500, body: { code: classified.code, message: classified.message } };
  // The peer is an authenticated Transporter of the same installation: it gets the reason to log.
  return { status: 500, body: { code: 'BACKEND', message: err instanceof Error ? err.message : String(err) } };
}

interface Served {
  backend: LocalBackend;
  ids: BlobIds;
}

export class RepositoryServer {
  private readonly served = new Map<string, Served>();
  /** The client's Transporter id per TLS connection (the certificate does not change within one). */
  private readonly peers = new WeakMap<TLSSocket, string | null>();
  private readonly server: https.Server;
  /** The certificate and key served now (setIdentity swaps them). */
  private identity: { certPem: string; keyPem: string };

  private constructor(private readonly opts: RepositoryServerOptions) {
    this.identity = opts.identity;
    for (const [name, folder] of Object.entries(opts.repositories)) {
      if (!REPOSITORY_NAME.test(name)) throw new Error(`repository name ${JSON.stringify(name)} must match ${REPOSITORY_NAME}`);
      if (!path.isAbsolute(folder)) throw new Error(`the folder of repository ${name} must be an absolute path (got ${JSON.stringify(folder)})`);
      const backend = new LocalBackend(folder);
      this.served.set(name, { backend, ids: new BlobIds(backend) });
    }
    this.server = https.createServer({
      cert: opts.identity.certPem,
      key: opts.identity.keyPem,
      ca: [opts.caPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      // Longer than the client's idle sockets live, so the server never closes one the client is about to reuse.
      keepAliveTimeout: 65_000,
      // A 32 MiB pack over a slow line may take minutes; an idle connection is still dropped (setTimeout below).
      requestTimeout: 0,
    });
    // A writer may stay open, idle, while its producer waits on a slow source; a dead peer's connection goes after ten minutes.
    this.server.setTimeout(600_000);
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
  }

  /** Listens on `host:port` until close(). */
  static async start(opts: RepositoryServerOptions): Promise<RepositoryServer> {
    const server = new RepositoryServer(opts);
    server.server.listen(opts.port, opts.host);
    await once(server.server, 'listening');
    return server;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** What clients pin (certificateFingerprint of the identity). */
  get fingerprint(): string {
    return certificateFingerprint(this.identity.certPem);
  }

  /**
   * Serves with another certificate from now on (a renewed one: clients pin the new fingerprint as soon as
   * the Director records it); connections already open keep the one they were made with.
   */
  setIdentity(identity: { certPem: string; keyPem: string }): void {
    this.server.setSecureContext({ cert: identity.certPem, key: identity.keyPem, ca: [this.opts.caPem], minVersion: 'TLSv1.3' });
    this.identity = identity;
  }

  /** Stops listening, ends every connection (uploads in flight are discarded), closes the folders' files. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    for (const { backend } of this.served.values()) await backend.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.route(req, res);
    } catch (err) {
      const { status, body } = wireError(err);
      if (res.headersSent) {
        // Part of a body went out: only a broken connection tells the client it is incomplete.
        res.destroy();
        return;
      }
      const json = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
      res.end(json);
    }
  }

  private peer(req: IncomingMessage): string | null {
    const socket = req.socket as TLSSocket;
    let id = this.peers.get(socket);
    if (id === undefined) {
      id = transporterIdOf(socket.getPeerCertificate());
      this.peers.set(socket, id);
    }
    return id;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [pathname = '', query = ''] = (req.url ?? '').split('?', 2);
    const parts = pathname.split('/');
    if (parts.length !== 4 || parts[0] !== '' || parts[1] !== 'r') throw new Refusal(404, 'NO_SUCH_OPERATION', `no such operation: ${pathname}`);
    // Names need no escaping (REPOSITORY_NAME): an escaped one matches none.
    const name = parts[2]!;
    const op = parts[3] as Op;
    const transporter = this.peer(req);
    if (!transporter || !this.opts.allow(transporter, name)) {
      throw new Refusal(403, 'FORBIDDEN', `transporter ${transporter ?? '(certificate names none)'} may not use repository ${name}`);
    }
    const served = this.served.get(name);
    if (!served) throw new Refusal(404, 'NO_SUCH_REPOSITORY', `this Transporter serves no repository ${name}`);
    const params = new URLSearchParams(query);
    const p = params.get('path') ?? '';
    const directory = op === 'list' || op === 'stat' || op === 'dir' || op === 'mkdir';
    const problem = op === 'lacking' ? null : pathProblem(p, directory);
    if (problem) throw badRequest(`${JSON.stringify(p)}: ${problem}`);
    const { backend, ids } = served;
    switch (`${req.method ?? ''} ${op}`) {
      case 'GET file':
        return sendFile(res, backend, p);
      case 'GET range':
        return sendRange(res, backend, p, integer(params, 'offset'), integer(params, 'length'));
      case 'PUT upload':
        return receiveUpload(req, res, backend, ids, p);
      case 'POST create': {
        // 201: created; 200: the name was taken, nothing written.
        return answer(res, (await backend.createExclusive(p, await readBody(req, MAX_CREATE_BYTES))) ? 201 : 200);
      }
      case 'GET list':
        return answer(res, 200, JSON.stringify(await backend.list(p)));
      case 'GET stat':
        return answer(res, 200, JSON.stringify(await backend.stat(p)));
      case 'DELETE file':
        await ids.removing(p);
        await backend.remove(p);
        return answer(res, 204);
      case 'DELETE dir':
        await backend.removeDir(p);
        return answer(res, 204);
      case 'POST mkdir':
        await backend.mkdirp(p);
        return answer(res, 204);
      case 'POST lacking': {
        const body = await readBody(req, LACKING_BATCH * ID_BYTES);
        if (body.length % ID_BYTES !== 0) throw badRequest(`the body (${body.length} bytes) is not a list of 32-byte ids`);
        return answer(res, 200, await ids.lacking(body));
      }
      default:
        throw new Refusal(405, 'NO_SUCH_OPERATION', `no such operation: ${req.method ?? ''} ${op}`);
    }
  }
}

function integer(params: URLSearchParams, name: string): number {
  const value = Number(params.get(name));
  if (!/^\d+$/.test(params.get(name) ?? '') || !Number.isSafeInteger(value)) throw badRequest(`${name} must be a non-negative integer`);
  return value;
}

function answer(res: ServerResponse, status: number, body?: string | Buffer): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'application/json' : 'application/octet-stream', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A small body (createExclusive, lacking), refused past `limit` bytes before more is read. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (!(declared <= limit)) throw new Refusal(413, 'INVALID_ARGUMENT', `the body must have a length of at most ${limit} bytes`);
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/**
 * Writes one slice, and waits for the socket to drain once more than a slice is queued: the next slice
 * is read while this one goes out, and a slow client holds the reads back (backpressure).
 */
async function send(res: ServerResponse, data: Buffer): Promise<void> {
  if (!res.destroyed && !res.write(data) && res.writableLength > SLICE_BYTES) {
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
  if (res.destroyed) throw new Error('the client went away');
}

/**
 * Whole-file reads stream from one open file: a metadata file replaced meanwhile (writeFileAtomic's
 * rename) is read as it was when opened, never half old and half new.
 */
async function sendFile(res: ServerResponse, backend: LocalBackend, p: string): Promise<void> {
  const file = await fsp.open(backend.absolute(p), 'r').catch((err: unknown) => {
    throw classifyFsError(err, p);
  });
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw badRequest(`${p} is not a file`);
    const size = stat.size;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    for (let off = 0; off < size; ) {
      const { bytesRead, buffer } = await file.read(Buffer.allocUnsafe(Math.min(SLICE_BYTES, size - off)), 0, Math.min(SLICE_BYTES, size - off), off);
      if (bytesRead === 0) throw new Error(`${p} became shorter while it was read`);
      await send(res, buffer.subarray(0, bytesRead));
      off += bytesRead;
    }
    res.end();
  } finally {
    await file.close();
  }
}

/** A range through LocalBackend.readRange, slice by slice; a range past the end is refused (CORRUPT) before a byte is sent. */
async function sendRange(res: ServerResponse, backend: LocalBackend, p: string, offset: number, length: number): Promise<void> {
  const stat = await backend.stat(p);
  if (!stat) throw new NotFoundError(p);
  // LocalBackend.readRange's own answer to a short read, given before any of the range is sent.
  if (stat.size < offset + length) throw new CorruptDataError(`short read: ${p} has fewer than ${offset + length} bytes`);
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': length });
  for (let done = 0; done < length; ) {
    const n = Math.min(SLICE_BYTES, length - done);
    await send(res, await backend.readRange(p, offset + done, n));
    done += n;
  }
  res.end();
}

/**
 * A streamed upload into a LocalBackend FileWriter (see pump for the backpressure). The file is named
 * only when the END_TRAILER says `commit <size>` and the size agrees; otherwise, or when anything
 * fails, the tmp file is removed before the answer goes out.
 */
async function receiveUpload(req: IncomingMessage, res: ServerResponse, backend: LocalBackend, ids: BlobIds, p: string): Promise<void> {
  const writer = await backend.openWriter(p);
  let end: string | undefined;
  let committed = false;
  try {
    await pump(req, (chunk) => writer.write(chunk));
    end = req.trailers[END_TRAILER];
    if (end === `commit ${writer.size}`) {
      await writer.commit();
      committed = true;
    }
  } finally {
    if (!committed) await writer.abort();
  }
  if (committed) {
    await ids.added(p);
    return answer(res, 201);
  }
  if (end === 'abort') return answer(res, 204);
  throw badRequest(`the upload of ${p} ended with ${JSON.stringify(end ?? null)} after ${writer.size} bytes: discarded`);
}

/**
 * Feeds the request body to `write` in order, pausing the socket while more than SLICE_BYTES wait
 * for the disk: a slow disk holds the client back through TCP instead of filling memory. Unlike
 * for-await (which destroys the request, and so the connection, when a write fails), a failed write
 * leaves the connection up and the rest of the body is discarded: the refusal (ENOSPC, say) reaches
 * the client.
 */
function pump(req: IncomingMessage, write: (chunk: Buffer) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let queued = 0;
    let chain = Promise.resolve();
    const fail = (err: unknown) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.resume();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      queued += chunk.length;
      if (queued > SLICE_BYTES) req.pause();
      chain = chain.then(async () => {
        await write(chunk);
        queued -= chunk.length;
        if (req.isPaused() && queued <= SLICE_BYTES / 2) req.resume();
      });
      chain.catch(fail);
    };
    const onEnd = () => void chain.then(resolve, fail);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', fail);
    req.once('close', () => {
      if (!req.complete) fail(new Error('the upload broke off'));
    });
  });
}
