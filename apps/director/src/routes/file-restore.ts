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
 * A user holds VAULTLINE_FLR_MAX_SESSIONS_PER_USER sessions at most (429 past
 * that), and a session is closed VAULTLINE_FLR_MAX_HOURS after it was opened,
 * even while in use. The session token is bound to the user who opened it. These routes log at
 * warn level only, so request lines (which carry the token and file names)
 * stay out of the log; the audit log records who took what.
 *
 * The Director mounts nothing: it serves the restore point's disks over NBD
 * and the file-level restore helper (vaultline-flr) mounts and reads them,
 * asked over a unix socket in the run directory they share. A helper that is
 * not running is a 503 naming it.
 */
import path from 'node:path';
import {
  ApiErrorSchema,
  BrowseItemQuerySchema,
  BrowseListingSchema,
  BrowseListQuerySchema,
  BrowseSessionSchema,
  BrowseSessionTokenSchema,
  type BrowseListingDto,
  type BrowseSessionDto,
} from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { display, FileRestoreSessions, FlrHelper, parsePath, pgFlrJournal, type Session } from '@vaultline/flr';
import type { Logger } from '@vaultline/logger';
import { loadJournalKey } from '@vaultline/appliance';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { apiErrorOf } from '../domain-errors.ts';
import { AppError } from '../errors.ts';
import { currentUser } from '../auth/guard.ts';
import { binary, NoContent } from '../openapi.ts';
import type { AuditLog } from '../services/audit.ts';
import type { RepositoryCache } from '../services/repository-cache.ts';
import { parse } from '../validate.ts';

export interface FileRestoreOptions {
  /** Close a session unused this long (default 30 min). */
  idleMs?: number;
  /** Sessions open at once (default 4). */
  maxSessions?: number;
  /** The directory shared with the helper: its socket and token, and the NBD sockets (default <data dir>/flr-run). */
  runDir?: string;
  /** Sessions one user may hold at once (default 2). */
  maxPerUser?: number;
  /** Close a session this long after it was opened, even while in use (default 8 h). */
  maxLifetimeMs?: number;
}

const Id = z.object({ id: z.uuid() });
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
  const known = apiErrorOf(err);
  if (known) throw known;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EIO' || code === 'ENOTCONN') throw new AppError('bad_gateway', `${what}: the restore point could not be read (I/O error); verify the repository`);
  if (code === 'EACCES' || code === 'EPERM') throw new AppError('conflict', `${what}: permission denied by the filesystem`);
  if (code === 'ENOENT') throw new AppError('not_found', `${what}: no such file or directory`);
  throw new AppError('conflict', `${what}: ${(err as Error).message}`);
}

export async function fileRestoreRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; secretKey: Buffer; repositories: RepositoryCache; dataDir: string; log: Logger; options?: FileRestoreOptions }): Promise<void> {
  const { db, audit } = deps;
  const runDir = path.resolve(deps.options?.runDir ?? path.join(deps.dataDir, 'flr-run'));
  const sessions = new FileRestoreSessions({
    root: path.join(runDir, 'nbd'),
    helper: new FlrHelper(runDir),
    // Rows are signed with the Director's local journal.key (never in the database); see docs/ARCHITECTURE.md.
    journal: pgFlrJournal(db, await loadJournalKey(path.resolve(deps.dataDir)), { log: deps.log }),
    secretKey: deps.secretKey,
    log: deps.log,
    ...(deps.options?.idleMs ? { idleMs: deps.options.idleMs } : {}),
    ...(deps.options?.maxSessions ? { maxSessions: deps.options.maxSessions } : {}),
    ...(deps.options?.maxPerUser ? { maxPerUser: deps.options.maxPerUser } : {}),
    ...(deps.options?.maxLifetimeMs ? { maxLifetimeMs: deps.options.maxLifetimeMs } : {}),
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
  const who = (request: FastifyRequest) => ({ actor: currentUser(request).username, ip: request.ip });

  const session = (request: FastifyRequest): { s: Session; id: string } => {
    const { id, session: token } = parse(Params, request.params);
    try {
      return { s: sessions.use(token, currentUser(request).id, id), id };
    } catch (err) {
      toAppError(err, 'browse session');
    }
  };

  app.post('/restore-points/:id/browse', { ...route, schema: { params: Id, response: { 201: BrowseSessionSchema } } }, async (request, reply) => {
    const { id } = parse(Id, request.params);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const what = `restore point ${point.repoPointId} of ${point.vmName}`;
    let view: BrowseSessionDto;
    try {
      const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
      const disks = (await deps.repositories.use(point.repository, (repo) => repo.readManifest(ref))).disks.map((d) => ({ key: d.key, capacity: d.capacity }));
      view = await sessions.open({ restorePointId: id, label: what, repository: point.repository, ref, disks, user: { id: currentUser(request).id, username: currentUser(request).username } });
    } catch (err) {
      toAppError(err, `${what} cannot be opened for browsing`);
    }
    const mounted = view.disks.flatMap((d) => d.partitions.filter((p) => p.mounted).map((p) => p.id));
    await audit.record({ ...who(request), action: 'restore-point.browse', subject: `${point.vmName} ${point.repoPointId}`, detail: { mounted } });
    return reply.code(201).send(view);
  });

  app.get('/restore-points/:id/browse/:session', { ...route, schema: { params: Params, response: { 200: BrowseSessionSchema } } }, async (request) => {
    const { s } = session(request);
    return s.view;
  });

  app.get('/restore-points/:id/browse/:session/list', { ...route, schema: { params: Params, querystring: BrowseListQuerySchema, response: { 200: BrowseListingSchema } } }, async (request): Promise<BrowseListingDto> => {
    const { s } = session(request);
    const q = parse(BrowseListQuerySchema, request.query);
    try {
      return await sessions.list(s, { partition: q.partition, path: parsePath(q) }, { cursor: q.cursor, limit: q.limit });
    } catch (err) {
      toAppError(err, `listing ${q.partition}:${q.path ?? q.ref ?? ''}`);
    }
  });

  app.get('/restore-points/:id/browse/:session/file', { ...route, schema: { params: Params, querystring: BrowseItemQuerySchema, response: { 200: binary('application/octet-stream'), 206: binary('application/octet-stream'), 416: ApiErrorSchema } } }, async (request, reply: FastifyReply) => {
    const { s } = session(request);
    const q = parse(BrowseItemQuerySchema, request.query);
    const comps = (() => {
      try {
        return parsePath(q);
      } catch (err) {
        toAppError(err, 'download');
      }
    })();
    const what = `downloading ${q.partition}:${q.path ?? q.ref ?? ''}`;
    const file = { partition: q.partition, path: comps };
    const st = await sessions.stat(s, file).catch((err: unknown) => toAppError(err, what));
    const range = parseRange(request.headers.range, st.size);
    if (range === 'unsatisfiable') {
      return reply.code(416).header('content-range', `bytes */${st.size}`).send({ code: 'range_not_satisfiable', message: `the file has ${st.size} bytes` });
    }
    const shown = comps.map(display).join('/');
    await audit.record({ ...who(request), action: 'restore-point.file-download', subject: `${s.restorePointId} ${q.partition}:${shown}`, detail: { bytes: st.size, ...(range ? { range: `${range[0]}-${range[1]}` } : {}) } });
    reply.header('content-type', 'application/octet-stream');
    reply.header('accept-ranges', 'bytes');
    reply.header('last-modified', new Date(st.mtime).toUTCString());
    reply.header('content-disposition', contentDisposition(display(comps[comps.length - 1]!)));
    if (st.size === 0) {
      reply.header('content-length', '0');
      return reply.send(Buffer.alloc(0));
    }
    const [start, end] = range ?? [0, st.size - 1];
    const stream = await sessions.read(s, file, start, end).catch((err: unknown) => toAppError(err, what));
    if (range) {
      reply.code(206);
      reply.header('content-range', `bytes ${start}-${end}/${st.size}`);
    }
    reply.header('content-length', String(end - start + 1));
    return reply.send(stream);
  });

  app.get('/restore-points/:id/browse/:session/archive', { ...route, schema: { params: Params, querystring: BrowseItemQuerySchema, response: { 200: binary('application/x-tar') } } }, async (request, reply) => {
    const { s } = session(request);
    const q = parse(BrowseItemQuerySchema, request.query);
    let comps: Buffer[];
    let tar: Awaited<ReturnType<FileRestoreSessions['archive']>>;
    try {
      comps = parsePath(q);
      // The helper answers errors about the top path (4xx) before any byte is sent.
      tar = await sessions.archive(s, { partition: q.partition, path: comps });
    } catch (err) {
      toAppError(err, `archiving ${q.partition}:${q.path ?? q.ref ?? ''}`);
    }
    const base = comps.length ? display(comps[comps.length - 1]!) : `${q.partition}`;
    const shown = comps.map(display).join('/');
    tar.stream.once('close', () => {
      const stats = tar.stats();
      void audit
        .record({ ...who(request), action: 'restore-point.archive-download', subject: `${s.restorePointId} ${q.partition}:${shown || '/'}`, detail: { ...(stats ?? { files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [] }), complete: stats !== null } })
        .catch(() => undefined);
    });
    reply.header('content-type', 'application/x-tar');
    reply.header('content-disposition', contentDisposition(`${base}.tar`));
    return reply.send(tar.stream);
  });

  app.delete('/restore-points/:id/browse/:session', { ...route, schema: { params: Params, response: { 204: NoContent } } }, async (request, reply) => {
    const { s } = session(request);
    const { session: token } = parse(Params, request.params);
    try {
      await sessions.close(token, currentUser(request).id);
    } catch (err) {
      toAppError(err, 'closing the browse session');
    }
    await audit.record({ ...who(request), action: 'restore-point.browse-close', subject: s.restorePointId, detail: {} });
    return reply.code(204).send();
  });
}
