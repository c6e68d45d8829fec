/**
 * The helper's HTTP server (protocol.ts) over its MountSessions: the only
 * place that reads guest filesystems. Runs in vaultline-flr (main.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Logger } from '@vaultline/logger';
import { z } from 'zod';
import { archive, BrowseError, list, openFile, parsePath, resolve, type ArchiveStats } from '../browse.ts';
import type { MountSessions } from '../mounts.ts';
import { FlrSessionError, FlrUnavailableError } from '../system.ts';
import { ARCHIVE_STATS_TRAILER, statusOf, type FileStat, type HelperErrorBody } from './protocol.ts';

const Item = z.object({ partition: z.string().min(1).max(32), ref: z.string().max(8192) });
const ListBody = Item.extend({ cursor: z.string().max(8192).optional(), limit: z.number().int().min(1).max(5000) });
const ReadBody = Item.extend({ start: z.number().int().min(0), end: z.number().int().min(0) });
const MountBody = z.object({
  id: z.string(),
  nbdSocket: z.string().min(1).max(107),
  disks: z.array(z.object({ key: z.string().min(1).max(64), capacity: z.number().int().min(0), exportName: z.string().min(1).max(64) })).min(1).max(64),
  owner: z.string().min(1).max(64),
  label: z.string().max(512),
});
const SweepBody = z.object({ owner: z.string().min(1).max(64) });

class HttpError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function errorOf(err: unknown): [number, HelperErrorBody] {
  if (err instanceof FlrUnavailableError) return [503, { code: 'service_unavailable', message: err.message, missing: err.missing }];
  if (err instanceof FlrSessionError || err instanceof BrowseError || err instanceof HttpError) return [statusOf(err.code), { code: err.code, message: err.message }];
  if (err instanceof z.ZodError) return [400, { code: 'bad_request', message: err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') }];
  const errno = (err as NodeJS.ErrnoException).code;
  if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) return [500, { code: 'errno', errno, message: (err as Error).message }];
  return [500, { code: 'internal', message: (err as Error).message }];
}

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 256 * 1024) throw new HttpError('bad_request', 'request body too large');
    chunks.push(c);
  }
  return size ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

const sendJson = (res: ServerResponse, status: number, value: unknown) => {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

export function helperServer(deps: { sessions: MountSessions; token: string; log: Logger }): http.Server {
  const { sessions, log } = deps;
  const want = Buffer.from(`Bearer ${deps.token}`);
  const authorized = (req: IncomingMessage) => {
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === want.length && timingSafeEqual(got, want);
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!authorized(req)) throw new HttpError('unauthorized', 'the helper token is missing or wrong (the helper restarted, or this caller may not read its token file)');
    const url = new URL(req.url ?? '/', 'http://helper');
    const parts = url.pathname.split('/').filter(Boolean);
    const [v, what, id, action] = parts;
    if (v !== 'v1' || parts.length > 4) throw new HttpError('not_found', `no route ${req.method} ${url.pathname}`);
    const m = req.method;
    if (what === 'health' && m === 'GET' && !id) return sendJson(res, 200, { missing: await sessions.missing() });
    if (what === 'sweep' && m === 'POST' && !id) return sendJson(res, 200, await sessions.sweepFor(SweepBody.parse(await body(req)).owner));
    if (what !== 'sessions') throw new HttpError('not_found', `no route ${m} ${url.pathname}`);
    if (!id && m === 'POST') return sendJson(res, 201, await sessions.open(MountBody.parse(await body(req))));
    if (id && !action && m === 'DELETE') {
      await sessions.close(id);
      res.writeHead(204).end();
      return;
    }
    if (!id || m !== 'POST') throw new HttpError('not_found', `no route ${m} ${url.pathname}`);
    switch (action) {
      case 'list': {
        const q = ListBody.parse(await body(req));
        return sendJson(res, 200, await list(sessions.mountPoint(id, q.partition), parsePath({ ref: q.ref }), { cursor: q.cursor, limit: q.limit }));
      }
      case 'stat': {
        const q = Item.parse(await body(req));
        const opened = await openFile(sessions.mountPoint(id, q.partition), parsePath({ ref: q.ref }));
        await opened.handle.close();
        return sendJson(res, 200, { size: opened.size, mtime: opened.mtime.toISOString() } satisfies FileStat);
      }
      case 'read': {
        const q = ReadBody.parse(await body(req));
        const opened = await openFile(sessions.mountPoint(id, q.partition), parsePath({ ref: q.ref }));
        if (q.end < q.start || q.end >= opened.size) {
          await opened.handle.close();
          throw new HttpError('bad_request', `bytes ${q.start}-${q.end} are not within the file's ${opened.size}`);
        }
        const stream = opened.handle.createReadStream({ start: q.start, end: q.end, highWaterMark: 1024 * 1024, autoClose: true });
        sessions.track(id, stream);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': q.end - q.start + 1 });
        stream.on('error', (err) => res.destroy(err));
        res.on('close', () => stream.destroy());
        stream.pipe(res);
        return;
      }
      case 'archive': {
        const q = Item.parse(await body(req));
        const root = sessions.mountPoint(id, q.partition);
        const comps = parsePath({ ref: q.ref });
        await resolve(root, comps); // errors about the top path are answered before any byte
        const stats: ArchiveStats = { files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [] };
        const stream = Readable.from(archive(root, comps, stats), { objectMode: false, highWaterMark: 4 * 1024 * 1024 });
        sessions.track(id, stream);
        res.writeHead(200, { 'content-type': 'application/x-tar', trailer: ARCHIVE_STATS_TRAILER });
        stream.on('error', (err) => res.destroy(err));
        stream.on('end', () => {
          // A trailer is a header: names are cut so 50 of them stay far below the 16 KiB header limit.
          res.addTrailers({ [ARCHIVE_STATS_TRAILER]: encodeURIComponent(JSON.stringify({ ...stats, skipped: stats.skipped.slice(0, 50).map((s) => s.slice(0, 80)) })) });
          res.end();
        });
        res.on('close', () => stream.destroy());
        stream.pipe(res, { end: false });
        return;
      }
      default:
        throw new HttpError('not_found', `no route ${m} ${url.pathname}`);
    }
  }

  return http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      const [status, payload] = errorOf(err);
      if (status >= 500 && payload.code !== 'service_unavailable') log.warn({ err: payload.message, url: req.url?.replace(/\/sessions\/[^/]+/, '/sessions/…') }, 'file restore helper: request failed');
      if (res.headersSent) res.destroy(err as Error);
      else sendJson(res, status, payload);
    });
  });
}
