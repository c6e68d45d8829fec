import { statfs } from 'node:fs/promises';
import {
  ApiErrorSchema,
  CapacityQuerySchema,
  RepositoryCapacitySchema,
  RepositoryCreateSchema,
  RepositoryRestorePointSchema,
  RepositorySchema,
  RepositoryStatsSchema,
  SftpHostKeyConfirmationSchema,
  type RepositoryCapacity,
  type RepositoryDto,
  type RepositoryRestorePoint,
  type RepositoryStats,
} from '@vaultline/contracts';
import { sealSecret } from '@vaultline/config';
import { SECRET_LABELS, backendFor, formatS3Location, identityColumns, RepositoryLocationError, TransferPeerError, transporterLocation } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import { hardeningProblem, probeSftpHostKey, Repository, RepositoryError, stats as repositoryStats, type RepositoryIdentity } from '@vaultline/repository';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { viewer, currentUser } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import type { RepositoryCache } from '../services/repository-cache.ts';
import { identityConflict } from '../services/repositories.ts';
import { restorePointDtos } from '../services/restore-points.ts';
import { sealSecretsForTransporters } from '../services/transporter-access.ts';
import { parse } from '../validate.ts';

type Row = Awaited<ReturnType<Db['repository']['findFirstOrThrow']>>;
export const repositoryDto = (r: Row): RepositoryDto => ({
  id: r.id,
  name: r.name,
  kind: r.kind === 'sftp' || r.kind === 's3' || r.kind === 'transporter' ? r.kind : 'local',
  location: r.location,
  encrypted: r.encrypted,
  hardened: r.hardened,
  createdAt: r.createdAt.toISOString(),
});

const Id = z.object({ id: z.uuid() });
const RestorePointsQuery = z.object({ vm: z.string().min(1).optional(), limit: z.coerce.number().int().min(1).max(1000).default(200) });

export async function repositoryRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; secretKey: Buffer; repositories: RepositoryCache }): Promise<void> {
  const { db, audit } = deps;

  app.get('/repositories', { ...viewer, schema: { response: { 200: z.array(RepositorySchema) } } }, async () => (await db.repository.findMany({ orderBy: { name: 'asc' } })).map(repositoryDto));

  const findRepository = async (params: unknown) => {
    const { id } = parse(Id, params);
    const row = await db.repository.findUnique({ where: { id } });
    if (!row) {
      deps.repositories.forget(id);
      throw new AppError('not_found', 'no such repository');
    }
    return row;
  };

  /** Sizes and ratios read from the repository itself, and free space where it lives (local only). */
  app.get('/repositories/:id/stats', { ...viewer, schema: { params: Id, response: { 200: RepositoryStatsSchema } } }, async (request): Promise<RepositoryStats> => {
    const row = await findRepository(request.params);
    try {
      return await deps.repositories.use(row, async (repo) => {
        const s = await repositoryStats(repo);
        let space: { freeBytes: number | null; totalBytes: number | null } = { freeBytes: null, totalBytes: null };
        if (row.kind === 'local') {
          const fs = await statfs(row.location);
          space = { freeBytes: Number(fs.bavail) * Number(fs.bsize), totalBytes: Number(fs.blocks) * Number(fs.bsize) };
        }
        return {
          repositoryId: row.id,
          restorePoints: s.restorePoints,
          logicalBytes: s.logicalBytes,
          uniqueRawBytes: s.uniqueRawBytes,
          storedBytes: s.storedBytes,
          dedupRatio: s.dedupRatio,
          compressionRatio: s.compressionRatio,
          ...space,
        };
      });
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('service_unavailable', `repository ${row.name} (${row.location}) cannot be read: ${(err as Error).message}`);
    }
  });

  /** The repository's size over the last `days` (samples the Transporter stored when it changed), and its newest figures. */
  app.get('/repositories/:id/capacity', { ...viewer, schema: { params: Id, querystring: CapacityQuerySchema, response: { 200: RepositoryCapacitySchema } } }, async (request): Promise<RepositoryCapacity> => {
    const row = await findRepository(request.params);
    const { days } = parse(CapacityQuerySchema, request.query);
    const since = new Date(Date.now() - days * 86_400_000);
    const [rows, newest] = await Promise.all([
      db.repositorySample.findMany({ where: { repositoryId: row.id, at: { gte: since } }, orderBy: [{ at: 'asc' }, { id: 'asc' }] }),
      db.repositorySample.findFirst({ where: { repositoryId: row.id }, orderBy: [{ at: 'desc' }, { id: 'desc' }] }),
    ]);
    const sample = (s: NonNullable<typeof newest>): RepositoryCapacity['samples'][number] => ({
      at: s.at.toISOString(),
      storedBytes: Number(s.storedBytes),
      logicalBytes: Number(s.logicalBytes),
      uniqueBytes: s.uniqueBytes === null ? null : Number(s.uniqueBytes),
      restorePoints: s.restorePoints,
      chunks: s.chunks,
    });
    const current = newest ? sample(newest) : null;
    return {
      repositoryId: row.id,
      days,
      samples: rows.map(sample),
      current: current && {
        ...current,
        dedupRatio: current.uniqueBytes ? current.logicalBytes / current.uniqueBytes : null,
        compressionRatio: current.uniqueBytes && current.storedBytes ? current.uniqueBytes / current.storedBytes : null,
      },
    };
  });

  /** Restore points recorded for this repository, newest first, optionally of one VM (name or instance UUID). */
  app.get('/repositories/:id/restore-points', { ...viewer, schema: { params: Id, querystring: RestorePointsQuery, response: { 200: z.array(RepositoryRestorePointSchema) } } }, async (request): Promise<RepositoryRestorePoint[]> => {
    const row = await findRepository(request.params);
    const q = parse(RestorePointsQuery, request.query);
    const points = await db.restorePoint.findMany({
      where: { repositoryId: row.id, ...(q.vm ? { OR: [{ vmName: q.vm }, { vmInstanceUuid: q.vm }] } : {}) },
      orderBy: { createdAt: 'desc' },
      take: q.limit,
    });
    return restorePointDtos(db, points);
  });

  app.post('/repositories', { config: { minRole: 'admin' }, schema: { body: RepositoryCreateSchema, response: { 201: RepositorySchema, 409: z.union([SftpHostKeyConfirmationSchema, ApiErrorSchema]) } } }, async (request, reply) => {
    const body = parse(RepositoryCreateSchema, request.body);
    if (await db.repository.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a repository named ${body.name} already exists`);
    const privateKey = body.kind === 'sftp' ? body.privateKey : undefined;
    const s3Secret = body.kind === 's3' ? body.secretAccessKey : undefined;
    // S3: where the repository is, as the row keeps it (the secret access key is sealed apart); a served one: whose, and its name there.
    const location = body.kind === 's3' ? formatS3Location(body) : body.kind === 'transporter' ? transporterLocation(body.transporterId, body.repository) : body.location;
    const hardened = body.kind === 'local' && body.hardened;
    // SFTP: the admin confirms the server's host key first; it is pinned from then on.
    let hostKey: string | null = null;
    if (body.kind === 'sftp') {
      const u = new URL(body.location);
      const presented = await probeSftpHostKey(u.hostname, Number(u.port || 22)).catch((err: unknown) => {
        throw new AppError('bad_request', `${body.location}: ${(err as Error).message}`);
      });
      if (!body.hostKeySha256) {
        reply.code(409);
        return {
          code: 'host_key_confirmation_required',
          message: `confirm that ${u.host} presents the SSH host key ${presented}, then send it back as hostKeySha256`,
          hostKeySha256: presented,
        };
      }
      if (presented !== body.hostKeySha256) throw new AppError('bad_request', `${u.host} presents SSH host key ${presented}, not the confirmed ${body.hostKeySha256}; refusing to connect`);
      hostKey = presented;
    }
    // Create it on storage (or adopt an existing one whose passphrase matches; an unencrypted one only without a passphrase).
    let identity: RepositoryIdentity;
    try {
      const backend = await backendFor({ kind: body.kind, location, sftpHostKeySha256: hostKey, hardened }, privateKey ?? s3Secret);
      // Hardened only where its files can really be made immutable, or its points would be refused at every backup.
      const problem = hardened ? await hardeningProblem(location) : null;
      if (problem) throw new AppError('bad_request', `${location} cannot be a hardened repository: ${problem}`);
      const passphrase = body.passphrase ? { passphrase: body.passphrase } : {};
      try {
        identity = await Repository.init(backend, passphrase);
        // A served repository holds connections to its Transporter open.
        if (body.kind === 'transporter') await backend.close();
      } catch (err) {
        if (!(err instanceof RepositoryError && err.code === 'ALREADY_EXISTS')) throw err;
        const repo = await Repository.open(backend, passphrase);
        identity = repo.identity;
        await repo.close();
      }
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof TransferPeerError) throw new AppError('bad_request', err.message);
      if (err instanceof RepositoryLocationError) throw new AppError('bad_request', err.message);
      const conflict = identityConflict(err);
      if (conflict) throw new AppError('conflict', `${location}: ${conflict.message}`);
      if (err instanceof RepositoryError) throw new AppError('bad_request', `${location}: ${err.message}`);
      throw new AppError('bad_request', `${location}: ${(err as Error).message}`);
    }
    const row = await db.repository.create({
      data: {
        name: body.name,
        kind: body.kind,
        location,
        encrypted: Boolean(body.passphrase),
        passphraseSealed: body.passphrase ? sealSecret(deps.secretKey, SECRET_LABELS.repositoryPassphrase, body.passphrase) : null,
        sftpKeySealed: privateKey ? sealSecret(deps.secretKey, SECRET_LABELS.repositorySshKey, privateKey) : null,
        sftpHostKeySha256: hostKey,
        s3SecretSealed: s3Secret ? sealSecret(deps.secretKey, SECRET_LABELS.repositoryS3Secret, s3Secret) : null,
        hardened,
        ...identityColumns(identity),
      },
    });
    // Remote Transporters get the passphrase and the storage credential sealed to their own keys.
    await sealSecretsForTransporters(db, deps.secretKey);
    await audit.record({ actor: currentUser(request).username, action: 'repository.create', subject: body.name, detail: { kind: body.kind, location, ...(hardened ? { hardened } : {}) }, ip: request.ip });
    reply.code(201);
    return repositoryDto(row);
  });
}
