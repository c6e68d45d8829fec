import { RepositoryCreateSchema, type RepositoryDto } from '@vaultline/contracts';
import { sealSecret } from '@vaultline/config';
import { SECRET_LABELS, backendFor } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import { Repository, RepositoryError } from '@vaultline/repository';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { parse } from '../validate.ts';

type Row = Awaited<ReturnType<Db['repository']['findFirstOrThrow']>>;
export const repositoryDto = (r: Row): RepositoryDto => ({
  id: r.id,
  name: r.name,
  kind: r.kind === 'sftp' ? 'sftp' : 'local',
  location: r.location,
  encrypted: r.encrypted,
  createdAt: r.createdAt.toISOString(),
});

export async function repositoryRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; secretKey: Buffer }): Promise<void> {
  const { db, audit } = deps;

  app.get('/api/repositories', async () => (await db.repository.findMany({ orderBy: { name: 'asc' } })).map(repositoryDto));

  app.post('/api/repositories', { config: { minRole: 'admin' } }, async (request, reply) => {
    const body = parse(RepositoryCreateSchema, request.body);
    if (await db.repository.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a repository named ${body.name} already exists`);
    const privateKey = body.kind === 'sftp' ? body.privateKey : undefined;
    // Create it on storage (or adopt an existing one whose passphrase matches).
    try {
      const backend = await backendFor({ kind: body.kind, location: body.location }, privateKey);
      try {
        await Repository.init(backend, body.passphrase ? { passphrase: body.passphrase } : {});
      } catch (err) {
        if (!(err instanceof RepositoryError && err.code === 'ALREADY_EXISTS')) throw err;
        const repo = await Repository.open(backend, body.passphrase ? { passphrase: body.passphrase } : {});
        await repo.close();
      }
    } catch (err) {
      if (err instanceof RepositoryError) throw new AppError('bad_request', `${body.location}: ${err.message}`);
      throw new AppError('bad_request', `${body.location}: ${(err as Error).message}`);
    }
    const row = await db.repository.create({
      data: {
        name: body.name,
        kind: body.kind,
        location: body.location,
        encrypted: Boolean(body.passphrase),
        passphraseSealed: body.passphrase ? sealSecret(deps.secretKey, SECRET_LABELS.repositoryPassphrase, body.passphrase) : null,
        sftpKeySealed: privateKey ? sealSecret(deps.secretKey, SECRET_LABELS.repositorySshKey, privateKey) : null,
      },
    });
    await audit.record({ actor: request.user!.username, action: 'repository.create', subject: body.name, detail: { kind: body.kind, location: body.location }, ip: request.ip });
    reply.code(201);
    return repositoryDto(row);
  });
}
