import { ApiErrorSchema, INSTANT_RECOVERY_FINAL_STATES, InventoryTreeSchema, InventoryVmSchema, OkSchema, PlacementTargetsSchema, ReauthSchema, ThumbprintConfirmationSchema, VCenterCreateSchema, VCenterSchema, type InventoryTree, type VCenter } from '@vaultline/contracts';
import { openSecret, sealSecret } from '@vaultline/config';
import type { Db } from '@vaultline/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { viewer, currentUser } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import type { Credentials } from '../auth/credentials.ts';
import { sealSecretsForTransporters } from '../services/transporter-access.ts';
import type { InventoryCache } from '../services/inventory-cache.ts';
import { ESXI_HOST_IDENTITY, type VCenterConnection, type VCenterConnector } from '../services/vcenter-connector.ts';
import { parse } from '../validate.ts';

export const VCENTER_PASSWORD_LABEL = 'vcenter-password';

const Id = z.object({ id: z.uuid() });

type VCenterRow = Awaited<ReturnType<Db['vCenter']['findFirstOrThrow']>>;

export function vcenterDto(v: VCenterRow): VCenter {
  return { id: v.id, name: v.name, url: v.url, username: v.username, thumbprintSha256: v.thumbprintSha256, isLab: v.isLab, createdAt: v.createdAt.toISOString() };
}

export function connectionOf(v: VCenterRow, secretKey: Buffer): VCenterConnection {
  return {
    url: v.url,
    username: v.username,
    password: openSecret(secretKey, VCENTER_PASSWORD_LABEL, v.passwordSealed),
    thumbprintSha256: v.thumbprintSha256,
    allowHttp: v.url.startsWith('http:'),
  };
}

export async function vcenterRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; credentials: Credentials; secretKey: Buffer; connector: VCenterConnector; inventory: InventoryCache }): Promise<void> {
  const { db, audit, connector } = deps;

  app.get('/vcenters', { ...viewer, schema: { response: { 200: z.array(VCenterSchema) } } }, async () => (await db.vCenter.findMany({ orderBy: { name: 'asc' } })).map(vcenterDto));

  app.post('/vcenters', { config: { minRole: 'admin' }, schema: { body: VCenterCreateSchema, response: { 201: VCenterSchema, 409: z.union([ThumbprintConfirmationSchema, ApiErrorSchema]) } } }, async (request, reply) => {
    const body = parse(VCenterCreateSchema, request.body);
    if (body.url.startsWith('http:') && !body.allowHttp) throw new AppError('bad_request', 'plain HTTP sends the password in clear; use https:// (or set allowHttp for a lab)');
    if (await db.vCenter.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a vCenter named ${body.name} already exists`);
    let thumbprint: string | null = null;
    if (body.url.startsWith('https:')) {
      const presented = await connector.probeThumbprint(body.url);
      if (!body.thumbprintSha256) {
        reply.code(409);
        return {
          code: 'thumbprint_confirmation_required',
          message: `confirm that ${new URL(body.url).host} presents the certificate with SHA-256 thumbprint ${presented.sha256}, then send it back as thumbprintSha256`,
          thumbprintSha256: presented.sha256,
          thumbprintSha1: presented.sha1,
        };
      }
      if (presented.sha256 !== body.thumbprintSha256) {
        throw new AppError('bad_request', `the server presents thumbprint ${presented.sha256}, not the confirmed ${body.thumbprintSha256}; refusing to connect`);
      }
      thumbprint = presented.sha256;
    }
    const about = await connector
      .verify({ url: body.url, username: body.username, password: body.password, thumbprintSha256: thumbprint, allowHttp: body.allowHttp })
      ;
    // The same vCenter under another name or another spelling of its address would back the same VMs
    // up twice and split their restore points between two rows.
    const already = () => (about.instanceUuid ? db.vCenter.findUnique({ where: { instanceUuid: about.instanceUuid } }) : null);
    const sameAs = (other: { name: string; url: string }) =>
      new AppError(
        'conflict',
        about.instanceUuid?.startsWith(ESXI_HOST_IDENTITY)
          ? `this ESXi host is already registered as ${other.name} (${other.url}, host UUID ${about.instanceUuid.slice(ESXI_HOST_IDENTITY.length)}); use that one, or remove it first`
          : `this vCenter is already registered as ${other.name} (${other.url}, instance UUID ${about.instanceUuid}); use that one, or remove it first`,
      );
    const registered = await already();
    if (registered) throw sameAs(registered);
    const row = await db.vCenter
      .create({
        data: {
          name: body.name,
          url: body.url,
          username: body.username,
          passwordSealed: sealSecret(deps.secretKey, VCENTER_PASSWORD_LABEL, body.password),
          thumbprintSha256: thumbprint,
          instanceUuid: about.instanceUuid,
        },
      })
      .catch(async (err: unknown) => {
        // Registered by someone else in the meantime (the unique index decides).
        const raced = await already();
        throw raced ? sameAs(raced) : err;
      });
    // Remote Transporters get the password sealed to their own keys.
    await sealSecretsForTransporters(db, deps.secretKey);
    await audit.record({ actor: currentUser(request).username, action: 'vcenter.create', subject: body.name, detail: { url: body.url, ...about }, ip: request.ip });
    reply.code(201);
    return vcenterDto(row);
  });

  app.delete('/vcenters/:id', { config: { minRole: 'admin' }, schema: { params: Id, body: ReauthSchema, response: { 200: OkSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const row = await db.vCenter.findUnique({ where: { id }, include: { _count: { select: { jobs: true } } } });
    if (!row) throw new AppError('not_found', 'no such vCenter');
    if (row._count.jobs > 0) throw new AppError('conflict', `${row.name} is used by ${row._count.jobs} job(s); delete or move them first`);
    const live = await db.instantRecovery.count({ where: { vcenterId: id, state: { notIn: [...INSTANT_RECOVERY_FINAL_STATES] } } });
    if (live > 0) throw new AppError('conflict', `${row.name} has ${live} VM(s) running by instant recovery; migrate or discard them first`);
    await deps.credentials.reauthenticate(request, 'vcenter.delete', row.name);
    // Finished recoveries are history of that vCenter: they go with it.
    await db.$transaction([db.instantRecovery.deleteMany({ where: { vcenterId: id } }), db.vCenter.delete({ where: { id } })]);
    await audit.record({ actor: currentUser(request).username, action: 'vcenter.delete', subject: row.name, ip: request.ip });
    return { ok: true };
  });

  /** Where a restored VM can go (read-only; operators, who start restores). */
  app.get('/vcenters/:id/placement', { config: { minRole: 'operator' }, schema: { params: Id, response: { 200: PlacementTargetsSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const row = await db.vCenter.findUnique({ where: { id } });
    if (!row) throw new AppError('not_found', 'no such vCenter');
    return connector.placementTargets(connectionOf(row, deps.secretKey));
  });

  app.get('/vcenters/:id/vms', { ...viewer, schema: { params: Id, response: { 200: z.array(InventoryVmSchema) } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const row = await db.vCenter.findUnique({ where: { id } });
    if (!row) throw new AppError('not_found', 'no such vCenter');
    // The present (the wizard lists what to back up), which also renews the overview's copy.
    const { vms } = await deps.inventory.listVms(connectionOf(row, deps.secretKey), row.name, { maxAgeMs: 0 });
    await db.vCenter.update({ where: { id }, data: { lastInventoryAt: new Date() } });
    return [...vms].sort((a, b) => a.name.localeCompare(b.name));
  });

  /** The VMs with the containers that hold them, and the containers (the wizard's inventory tree), read now. */
  app.get('/vcenters/:id/inventory', { ...viewer, schema: { params: Id, response: { 200: InventoryTreeSchema } } }, async (request): Promise<InventoryTree> => {
    const { id } = parse(Id, request.params);
    const row = await db.vCenter.findUnique({ where: { id } });
    if (!row) throw new AppError('not_found', 'no such vCenter');
    const { vms, containers, tagsError } = await deps.inventory.listVms(connectionOf(row, deps.secretKey), row.name, { maxAgeMs: 0 });
    await db.vCenter.update({ where: { id }, data: { lastInventoryAt: new Date() } });
    return { vms: [...vms].sort((a, b) => a.name.localeCompare(b.name)), containers: [...containers].sort((a, b) => a.path.localeCompare(b.path)), ...(tagsError ? { tagsError } : {}) };
  });
}
