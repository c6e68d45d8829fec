/**
 * File-level restore over HTTP (operator role, every action audited):
 *
 *   POST   /api/restore-points/:id/browse                       open a session: every disk's partitions, mounted read-only
 *   GET    /api/restore-points/:id/browse/:session              the session (disks, partitions, why some are not mounted)
 *   GET    /api/restore-points/:id/browse/:session/list         ?partition=&path=|ref=&cursor=&limit= (paged)
 *   GET    /api/restore-points/:id/browse/:session/file         ?partition=&path=|ref=  one file, with Range
 *   GET    /api/restore-points/:id/browse/:session/archive      ?partition=&path=|ref=  a directory as tar, streamed
 *   DELETE /api/restore-points/:id/browse/:session              unmount everything
 *
 * The session token is bound to the user who opened it. These routes log at
 * warn level only, so request lines (which carry the token and file names)
 * stay out of the log; the audit log records who took what.
 */
import path from 'node:path';
import { Readable } from 'node:stream';
import { BrowseItemQuerySchema, BrowseListQuerySchema, BrowseSessionTokenSchema, type BrowseListingDto, type BrowseSessionDto } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { archive, BrowseError, display, FileRestoreSessions, FlrSessionError, FlrUnavailableError, list, openFile, parsePath, pgFlrJournal, resolvePath, type ArchiveStats, type Session } from '@vaultline/flr';
import type { Logger } from '@vaultline/logger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { openRecordedRepository } from '../services/repositories.ts';
import { parse } from '../validate.ts';

export interface FileRestoreOptions {
  /** Close a session unused this long (default 30 min). */
  idleMs?: number;
  /** Sessions open at once (default 4). */
  maxSessions?: number;
  /** Where session mounts live (default <data dir>/flr). */
  root?: string;
}

const Params = z.object({ id: z.uuid(), session: BrowseSessionTokenSchema });

/** attachment; filename="ascii"; filename*=UTF-8''… (RFC 6266) */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%/]/g, '_') || 'download';
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** A single byte range of a `size`-byte file: null when absent or ignorable, 'unsatisfiable', or [start, end]. */
export function parseRange(header: string | undefined, size: number): null | 'unsatisfiable' | [number, number] {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null; // several ranges or another unit: answer with the whole file (allowed by RFC 9110)
  const [, a, b] = m;
  if (a === '' && b === '') return null;
  let start: number;
  let end: number;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return null;
  }
  if (start >= size || size === 0) return 'unsatisfiable';
  return [start, end];
}

function toAppError(err: unknown, what: string): never {
  if (err instanceof AppError) throw err;
  if (err instanceof FlrUnavailableError) throw new AppError('service_unavailable', err.message);
  if (err instanceof FlrSessionError) throw new AppError(err.code, err.message);
  if (err instanceof BrowseError) throw new AppError(err.code, err.message);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EIO' || code === 'ENOTCONN') throw new AppError('bad_gateway', `${what}: the restore point could not be read (I/O error); verify the repository`);
  if (code === 'EACCES' || code === 'EPERM') throw new AppError('conflict', `${what}: permission denied by the filesystem`);
  if (code === 'ENOENT') throw new AppError('not_found', `${what}: no such file or directory`);
  throw new AppError('conflict', `${what}: ${(err as Error).message}`);
}

export async function fileRestoreRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; secretKey: Buffer; dataDir: string; log: Logger; options?: FileRestoreOptions }): Promise<void> {
  const { db, audit } = deps;
  const sessions = new FileRestoreSessions({
    root: deps.options?.root ?? path.join(path.resolve(deps.dataDir), 'flr'),
    journal: pgFlrJournal(db),
    secretKey: deps.secretKey,
    log: deps.log,
    ...(deps.options?.idleMs ? { idleMs: deps.options.idleMs } : {}),
    ...(deps.options?.maxSessions ? { maxSessions: deps.options.maxSessions } : {}),
  });
  // Sweep what a Director that died left mounted, before serving anything; retried while the database is away.
  const sweepNow = async (): Promise<void> => {
    try {
      await sessions.start();
    } catch (err) {
      deps.log.error({ err }, 'file restore: the start-up sweep failed; retrying in 30 s');
      setTimeout(() => void sweepNow(), 30_000).unref();
    }
  };
  await sweepNow();
  app.addHook('onClose', async () => {
    await sessions.closeAll();
  });

  const route = { config: { minRole: 'operator' as const }, logLevel: 'warn' as const };
  const who = (request: FastifyRequest) => ({ actor: request.user!.username, ip: request.ip });

  const session = (request: FastifyRequest): { s: Session; id: string } => {
    const { id, session: token } = parse(Params, request.params);
    try {
      return { s: sessions.use(token, request.user!.id, id), id };
    } catch (err) {
      toAppError(err, 'browse session');
    }
  };

  app.post('/api/restore-points/:id/browse', route, async (request, reply) => {
    const { id } = parse(z.object({ id: z.uuid() }), request.params);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const what = `restore point ${point.repoPointId} of ${point.vmName}`;
    let view: BrowseSessionDto;
    try {
      const repo = await openRecordedRepository(db, point.repository, deps.secretKey);
      const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
      let disks: Array<{ key: string; capacity: number }>;
      try {
        disks = (await repo.readManifest(ref)).disks.map((d) => ({ key: d.key, capacity: d.capacity }));
      } finally {
        await repo.close();
      }
      view = await sessions.open({ restorePointId: id, label: what, repository: point.repository, ref, disks, user: { id: request.user!.id, username: request.user!.username } });
    } catch (err) {
      toAppError(err, `${what} cannot be opened for browsing`);
    }
    const mounted = view.disks.flatMap((d) => d.partitions.filter((p) => p.mounted).map((p) => p.id));
    await audit.record({ ...who(request), action: 'restore-point.browse', subject: `${point.vmName} ${point.repoPointId}`, detail: { mounted } });
    return reply.code(201).send(view);
  });

  app.get('/api/restore-points/:id/browse/:session', route, async (request) => {
    const { s } = session(request);
    return s.view;
  });

  app.get('/api/restore-points/:id/browse/:session/list', route, async (request): Promise<BrowseListingDto> => {
    const { s } = session(request);
    const q = parse(BrowseListQuerySchema, request.query);
    try {
      return await list(sessions.mountPoint(s, q.partition), parsePath(q), { cursor: q.cursor, limit: q.limit });
    } catch (err) {
      toAppError(err, `listing ${q.partition}:${q.path ?? q.ref ?? ''}`);
    }
  });

  app.get('/api/restore-points/:id/browse/:session/file', route, async (request, reply: FastifyReply) => {
    const { s } = session(request);
    const q = parse(BrowseItemQuerySchema, request.query);
    const comps = (() => {
      try {
        return parsePath(q);
      } catch (err) {
        toAppError(err, 'download');
      }
    })();
    const opened = await (async () => openFile(sessions.mountPoint(s, q.partition), comps))().catch((err: unknown) => toAppError(err, `downloading ${q.partition}:${q.path ?? q.ref ?? ''}`));
    const range = parseRange(request.headers.range, opened.size);
    if (range === 'unsatisfiable') {
      await opened.handle.close();
      return reply.code(416).header('content-range', `bytes */${opened.size}`).send({ code: 'range_not_satisfiable', message: `the file has ${opened.size} bytes` });
    }
    const shown = comps.map(display).join('/');
    await audit.record({ ...who(request), action: 'restore-point.file-download', subject: `${s.restorePointId} ${q.partition}:${shown}`, detail: { bytes: opened.size, ...(range ? { range: `${range[0]}-${range[1]}` } : {}) } });
    reply.header('content-type', 'application/octet-stream');
    reply.header('accept-ranges', 'bytes');
    reply.header('last-modified', opened.mtime.toUTCString());
    reply.header('content-disposition', contentDisposition(display(opened.name)));
    if (opened.size === 0) {
      await opened.handle.close();
      reply.header('content-length', '0');
      return reply.send(Buffer.alloc(0));
    }
    const [start, end] = range ?? [0, opened.size - 1];
    if (range) {
      reply.code(206);
      reply.header('content-range', `bytes ${start}-${end}/${opened.size}`);
    }
    reply.header('content-length', String(end - start + 1));
    const stream = opened.handle.createReadStream({ start, end, highWaterMark: 1024 * 1024, autoClose: true });
    sessions.track(s, stream);
    return reply.send(stream);
  });

  app.get('/api/restore-points/:id/browse/:session/archive', route, async (request, reply) => {
    const { s } = session(request);
    const q = parse(BrowseItemQuerySchema, request.query);
    let comps: Buffer[];
    let root: string;
    try {
      comps = parsePath(q);
      root = sessions.mountPoint(s, q.partition);
      await resolvePath(root, comps); // errors about the top path surface as 4xx before any byte is sent
    } catch (err) {
      toAppError(err, `archiving ${q.partition}:${q.path ?? q.ref ?? ''}`);
    }
    const stats: ArchiveStats = { files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [] };
    const base = comps.length ? display(comps[comps.length - 1]!) : `${q.partition}`;
    const stream = Readable.from(archive(root, comps, stats), { objectMode: false, highWaterMark: 4 * 1024 * 1024 });
    sessions.track(s, stream);
    const shown = comps.map(display).join('/');
    stream.once('close', () => {
      void audit
        .record({ ...who(request), action: 'restore-point.archive-download', subject: `${s.restorePointId} ${q.partition}:${shown || '/'}`, detail: { ...stats, skipped: stats.skipped.slice(0, 50), complete: stream.readableEnded } })
        .catch(() => undefined);
    });
    reply.header('content-type', 'application/x-tar');
    reply.header('content-disposition', contentDisposition(`${base}.tar`));
    return reply.send(stream);
  });

  app.delete('/api/restore-points/:id/browse/:session', route, async (request, reply) => {
    const { s } = session(request);
    const { session: token } = parse(Params, request.params);
    try {
      await sessions.close(token, request.user!.id);
    } catch (err) {
      toAppError(err, 'closing the browse session');
    }
    await audit.record({ ...who(request), action: 'restore-point.browse-close', subject: s.restorePointId, detail: {} });
    return reply.code(204).send();
  });
}
