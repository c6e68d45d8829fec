/**
 * The Director's side of the helper's protocol (protocol.ts): requests over
 * the unix socket with the token read from the helper's run directory at
 * every request (a restarted helper has a new one). A helper that is not
 * running, or whose files this process may not use, is FlrUnavailableError
 * (the API's 503 with a message); the helper's errors come back as the
 * errors the Director maps to 4xx (FlrSessionError) or, for filesystem
 * errors, an Error carrying the errno code.
 */
import http, { type IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ArchiveStats, Listing } from '../browse.ts';
import type { MountedView, MountRequest } from '../mounts.ts';
import type { SweepReport } from '../sweep.ts';
import { FlrError, FlrSessionError, FlrUnavailableError } from '../system.ts';
import { ARCHIVE_STATS_TRAILER, SOCKET_NAME, TOKEN_NAME, type FileStat, type HelperErrorBody } from './protocol.ts';

const SESSION_CODES = new Set(['bad_request', 'not_found', 'forbidden', 'conflict', 'rate_limited']);

function errorFrom(status: number, b: HelperErrorBody): Error {
  if (b.code === 'service_unavailable') return new FlrUnavailableError(b.missing ?? [b.message]);
  if (SESSION_CODES.has(b.code)) return new FlrSessionError(b.code as FlrSessionError['code'], b.message);
  if (b.code === 'errno' && b.errno) return Object.assign(new Error(b.message), { code: b.errno });
  if (b.code === 'unauthorized') return new FlrUnavailableError([`the helper (vaultline-flr) refused this Director's token: ${b.message}`]);
  return new FlrError(`the file-level restore helper failed (${status}): ${b.message}`);
}

export class FlrHelper {
  readonly socketPath: string;
  readonly tokenPath: string;

  constructor(readonly runDir: string) {
    this.socketPath = path.join(runDir, SOCKET_NAME);
    this.tokenPath = path.join(runDir, TOKEN_NAME);
  }

  private notRunning(detail: string): FlrUnavailableError {
    return new FlrUnavailableError([`its helper (vaultline-flr) is not running (${detail}); start it (systemctl start vaultline-flr, or the compose service flr)`]);
  }

  private async token(): Promise<string> {
    try {
      return (await readFile(this.tokenPath, 'utf8')).trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw this.notRunning(`no ${this.tokenPath}`);
      if (code === 'EACCES') throw new FlrUnavailableError([`the Director may not read the helper's token ${this.tokenPath} (it must be in the helper's group)`]);
      throw err;
    }
  }

  /** The response of a request that succeeded (2xx); anything else is thrown as an error. */
  async request(method: string, route: string, payload?: unknown): Promise<IncomingMessage> {
    const token = await this.token();
    const data = payload === undefined ? null : Buffer.from(JSON.stringify(payload));
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socketPath, method, path: route, agent: false, headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) } },
        resolve,
      );
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(this.notRunning(`nothing listens on ${this.socketPath}`));
        else if (err.code === 'EACCES') reject(new FlrUnavailableError([`the Director may not connect to ${this.socketPath} (it must be in the helper's group)`]));
        else reject(err);
      });
      req.end(data ?? undefined);
    });
    if (res.statusCode! >= 200 && res.statusCode! < 300) return res;
    const text = await readAll(res);
    let b: HelperErrorBody;
    try {
      b = JSON.parse(text) as HelperErrorBody;
    } catch {
      b = { code: 'internal', message: text.slice(0, 500) };
    }
    throw errorFrom(res.statusCode!, b);
  }

  private async json<T>(method: string, route: string, payload?: unknown): Promise<T> {
    const res = await this.request(method, route, payload);
    const text = await readAll(res);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  health(): Promise<{ missing: string[] }> {
    return this.json('GET', '/v1/health');
  }

  sweep(owner: string): Promise<SweepReport> {
    return this.json('POST', '/v1/sweep', { owner });
  }

  open(req: MountRequest): Promise<MountedView> {
    return this.json('POST', '/v1/sessions', req);
  }

  async close(id: string): Promise<void> {
    await this.json('DELETE', `/v1/sessions/${encodeURIComponent(id)}`);
  }

  list(id: string, item: { partition: string; ref: string }, page: { cursor?: string | undefined; limit: number }): Promise<Listing> {
    return this.json('POST', `/v1/sessions/${encodeURIComponent(id)}/list`, { ...item, ...(page.cursor ? { cursor: page.cursor } : {}), limit: page.limit });
  }

  stat(id: string, item: { partition: string; ref: string }): Promise<FileStat> {
    return this.json('POST', `/v1/sessions/${encodeURIComponent(id)}/stat`, item);
  }

  /** Bytes [start, end] of a regular file. */
  read(id: string, item: { partition: string; ref: string }, start: number, end: number): Promise<IncomingMessage> {
    return this.request('POST', `/v1/sessions/${encodeURIComponent(id)}/read`, { ...item, start, end });
  }

  /** A directory as tar; `stats()` is known once the stream ended (null when it did not end). */
  async archive(id: string, item: { partition: string; ref: string }): Promise<{ stream: IncomingMessage; stats: () => ArchiveStats | null }> {
    const stream = await this.request('POST', `/v1/sessions/${encodeURIComponent(id)}/archive`, item);
    return {
      stream,
      stats: () => {
        const t = stream.trailers[ARCHIVE_STATS_TRAILER];
        return typeof t === 'string' ? (JSON.parse(decodeURIComponent(t)) as ArchiveStats) : null;
      },
    };
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}
