/**
 * Restore points: listing, downloading one disk of one as a raw image or a
 * streamOptimized VMDK (what `qemu-img`, ESXi imports and OVF tools read), and
 * the whole VM as an OVA (OVF descriptor from the recorded hardware + one
 * streamOptimized VMDK per disk), all streamed straight from the repository
 * without a temporary copy. Downloads need the operator role: they hand out
 * every byte of the VM's disks, which a viewer may not take away. Deleting one (admin, with the current
 * password) is refused while it is immutable: by its row, and whatever the row says, by the repository
 * (its manifest's lock date, and on S3 with Object Lock or a hardened local repository, the storage itself).
 */
import { Readable } from 'node:stream';
import { OkSchema, ReauthSchema, RepositoryRestorePointSchema, RestorePointDetailSchema, RestorePointDiskSchema, type RestorePointDetail } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { servedPoints } from '@vaultline/appliance';
import { deleteRestorePoint, DiskReader, RepositoryError } from '@vaultline/repository';
import { adapterTypeFor, createOva, OvfError, parseOvfHardware, writeOva, writeStreamOptimized, type OvaDisk } from '@vaultline/vmdk';
import { parseDatastorePath, type HardwareDescription } from '@vaultline/vsphere';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { admin, viewer, currentUser } from '../auth/guard.ts';
import type { Credentials } from '../auth/credentials.ts';
import { binary } from '../openapi.ts';
import type { AuditLog } from '../services/audit.ts';
import type { RepositoryCache, RepositoryLease } from '../services/repository-cache.ts';
import { restorePointDtos } from '../services/restore-points.ts';
import { parse } from '../validate.ts';

const STEP = 4 * 1024 * 1024;

const Id = z.object({ id: z.uuid() });
const ListQuery = z.object({ vm: z.string().optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) });
const DiskParams = z.object({ id: z.uuid(), key: z.string().regex(/^[A-Za-z0-9:._-]{1,64}$/) });
const DiskQuery = z.object({ format: z.enum(['raw', 'vmdk']).default('vmdk') });
const OvaQuery = z.object({ layout: z.enum(['chunked', 'whole']).default('chunked') });

async function* rawImage(reader: DiskReader, capacity: number, close: () => Promise<void>): AsyncGenerator<Buffer> {
  try {
    for (let off = 0; off < capacity; off += STEP) yield await reader.read(off, Math.min(STEP, capacity - off));
  } finally {
    await close();
  }
}

const fileBase = (vmName: string) => vmName.replace(/[^A-Za-z0-9._-]/g, '_');

export async function restorePointRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; credentials: Credentials; repositories: RepositoryCache }): Promise<void> {
  const { db } = deps;

  app.get('/restore-points', { ...viewer, schema: { querystring: ListQuery, response: { 200: z.array(RepositoryRestorePointSchema) } } }, async (request) => {
    const q = parse(ListQuery, request.query);
    const rows = await db.restorePoint.findMany({ where: q.vm ? { OR: [{ vmName: q.vm }, { vmInstanceUuid: q.vm }] } : {}, orderBy: { createdAt: 'desc' }, take: q.limit });
    return restorePointDtos(db, rows);
  });

  /** One restore point with what a restore offers: origin vCenter, recorded hardware, disks and NIC networks. */
  app.get('/restore-points/:id', { ...viewer, schema: { params: Id, response: { 200: RestorePointDetailSchema } } }, async (request): Promise<RestorePointDetail> => {
    const { id } = parse(Id, request.params);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const origin = point.runVmId ? await db.runVm.findUnique({ where: { id: point.runVmId }, select: { vmMoref: true, run: { select: { job: { select: { vcenterId: true } } } } } }) : null;
    try {
      const m = await deps.repositories.use(point.repository, (repo) => repo.readManifest({ vmId: point.vmInstanceUuid, id: point.repoPointId }));
      const vm = (m.vm ?? {}) as { moref?: string; hardware?: HardwareDescription | null };
      const hw = vm.hardware ?? null;
      const datastoreOf = (fileName: string | undefined) => {
        try {
          return fileName ? parseDatastorePath(fileName).datastore : null;
        } catch {
          return null;
        }
      };
      const [dto] = await restorePointDtos(db, [point]);
      return {
        ...dto!,
        vcenterId: origin?.run.job?.vcenterId ?? null,
        sourceVm: { moref: vm.moref ?? (origin?.vmMoref || null), name: point.vmName },
        hardware: hw
          ? { guestId: hw.guestId ?? null, guestFullName: hw.guestFullName ?? null, cpus: hw.numCpu ?? null, memoryMiB: hw.memoryMiB ?? null, firmware: hw.firmware ?? null }
          : null,
        disks: m.disks.map((d) => {
          const h = hw?.disks.find((x) => String(x.key) === d.key);
          return { key: d.key, label: h?.label ?? `disk ${d.key}`, capacityBytes: d.capacity, controller: d.controller ?? h?.controller ?? null, datastore: datastoreOf(h?.fileName), thin: h ? h.thin : null };
        }),
        networks: [...new Set((hw?.nics ?? []).map((n) => n.networkName).filter((n): n is string => Boolean(n)))],
      };
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('service_unavailable', `restore point ${point.repoPointId} of ${point.vmName} cannot be read: ${(err as Error).message}`);
    }
  });

  app.delete('/restore-points/:id', { ...admin, schema: { params: Id, body: ReauthSchema, response: { 200: OkSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const what = `the restore point of ${point.vmName} taken ${point.createdAt.toISOString()}`;
    if (point.immutableUntil && point.immutableUntil.getTime() > Date.now()) throw new AppError('conflict', `${what} is immutable until ${point.immutableUntil.toISOString()}`);
    if ((await servedPoints(db, [id])).size > 0) throw new AppError('conflict', `${what} is in use: a VM runs from it by instant recovery; migrate or discard that VM first`);
    await deps.credentials.reauthenticate(request, 'restore-point.delete', what);
    try {
      await deps.repositories.use(point.repository, async (repo) => {
        // Shared, like retention's deletes: GC (exclusive) never sweeps while a point is half gone.
        const lock = await repo.locks.acquire('shared', 'delete restore point');
        try {
          await deleteRestorePoint(repo, { vmId: point.vmInstanceUuid, id: point.repoPointId });
        } finally {
          await lock.release();
        }
      });
    } catch (err) {
      // The repository's own lock date wins over the row's (which anyone able to write the database could clear).
      if (err instanceof RepositoryError && err.code === 'IMMUTABLE') throw new AppError('conflict', `${what} cannot be deleted: ${err.message}`);
      if (!(err instanceof RepositoryError && err.code === 'NOT_FOUND')) throw new AppError('service_unavailable', `${what} cannot be deleted: ${(err as Error).message}`);
      // Already gone from the repository: its row goes too.
    }
    await db.restorePoint.delete({ where: { id } });
    await deps.audit.record({ actor: currentUser(request).username, action: 'restore-point.delete', subject: what, detail: { repository: point.repository.name }, ip: request.ip });
    return { ok: true as const };
  });

  app.get('/restore-points/:id/disks', { ...viewer, schema: { params: Id, response: { 200: z.array(RestorePointDiskSchema) } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    // Its manifest only: neither the global index nor any other restore point is read.
    try {
      const m = await deps.repositories.use(point.repository, (repo) => repo.readManifest({ vmId: point.vmInstanceUuid, id: point.repoPointId }));
      return m.disks.map((d) => ({ key: d.key, capacityBytes: d.capacity, controller: d.controller ?? null, transport: d.transport ?? null }));
    } catch (err) {
      throw new AppError('service_unavailable', `restore point ${point.repoPointId} of ${point.vmName} cannot be read: ${(err as Error).message}`);
    }
  });

  app.get('/restore-points/:id/disks/:key/download', { config: { minRole: 'operator' }, schema: { params: DiskParams, querystring: DiskQuery, response: { 200: binary('application/x-vmdk', 'application/octet-stream') } } }, async (request, reply) => {
    const { id, key } = parse(DiskParams, request.params);
    const { format } = parse(DiskQuery, request.query);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    let lease: RepositoryLease | null = null;
    try {
      lease = await deps.repositories.lease(point.repository);
      const repo = lease.repo;
      const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
      const manifest = await repo.readManifest(ref);
      const disk = manifest.disks.find((d) => d.key === key);
      if (!disk) throw new AppError('not_found', `restore point has no disk ${key} (it has ${manifest.disks.map((d) => d.key).join(', ')})`);
      await repo.reloadIndex();
      const reader = await DiskReader.open(repo, ref, key);
      const done = lease;
      const close = async () => done.release();
      await deps.audit.record({ actor: currentUser(request).username, action: 'restore-point.download', subject: `${point.vmName} ${point.repoPointId} disk ${key}`, detail: { format }, ip: request.ip });
      const base = `${fileBase(point.vmName)}-${point.repoPointId}-disk${key}`;
      lease = null; // the stream releases it
      if (format === 'raw') {
        reply.header('content-type', 'application/octet-stream');
        reply.header('content-length', String(disk.capacity));
        reply.header('content-disposition', `attachment; filename="${base}.img"`);
        const body = Readable.from(rawImage(reader, disk.capacity, close));
        body.once('close', () => void close()); // also when it ends before its first read
        return reply.send(body);
      }
      const stream = writeStreamOptimized({ capacity: disk.capacity, read: (o, l) => reader.read(o, l) }, { adapterType: adapterTypeFor(disk.controller) });
      stream.once('close', () => void close());
      reply.header('content-type', 'application/x-vmdk');
      reply.header('content-disposition', `attachment; filename="${base}.vmdk"`);
      return reply.send(stream);
    } catch (err) {
      lease?.release(err);
      if (err instanceof AppError) throw err;
      throw new AppError('bad_request', `restore point ${point.repoPointId} of ${point.vmName} cannot be read: ${(err as Error).message}`);
    }
  });

  // ?layout=chunked (default): one pass, each VMDK as OVF chunk files, manifest last.
  // ?layout=whole: one file per VMDK for importers that do not read chunks; reads and compresses every disk twice
  // and sends the first byte only after the first pass (see packages/vmdk/src/ova.ts).
  app.get('/restore-points/:id/ova', { config: { minRole: 'operator' }, schema: { params: Id, querystring: OvaQuery, response: { 200: binary('application/x-tar') } } }, async (request, reply) => {
    const { id } = parse(Id, request.params);
    const { layout } = parse(OvaQuery, request.query);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const what = `restore point ${point.repoPointId} of ${point.vmName}`;
    let lease: RepositoryLease | null = null;
    try {
      lease = await deps.repositories.lease(point.repository);
      const repo = lease.repo;
      const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
      const manifest = await repo.readManifest(ref);
      const recorded = (manifest.vm ?? {}) as { hardware?: unknown };
      if (recorded.hardware === undefined || recorded.hardware === null) {
        throw new AppError('conflict', `${what} holds no hardware description, so it cannot be packaged as a VM; download its disks one by one (GET /api/restore-points/${id}/disks/<key>/download)`);
      }
      const hardware = parseOvfHardware(recorded.hardware);
      await repo.reloadIndex();
      const disks: OvaDisk[] = [];
      for (const d of manifest.disks) {
        const key = Number(d.key);
        if (!Number.isSafeInteger(key)) throw new OvfError(`disk ${d.key} is not named by a hardware device key`);
        const reader = await DiskReader.open(repo, ref, d.key);
        disks.push({ key, capacity: d.capacity, read: (o, l) => reader.read(o, l) });
      }
      const ova = createOva(hardware, disks, {
        layout,
        baseName: point.vmName,
        mtime: point.createdAt,
        annotation: `${point.vmName} as backed up by Vaultline at ${point.createdAt.toISOString()} (restore point ${point.repoPointId})`,
      });
      await deps.audit.record({ actor: currentUser(request).username, action: 'restore-point.download', subject: `${point.vmName} ${point.repoPointId} OVA`, detail: { format: 'ova', layout }, ip: request.ip });
      const done = lease;
      lease = null; // the stream releases it
      // 'whole' sends nothing until it has read every disk once: longer than the idle-connection timeout for big VMs.
      if (layout === 'whole') request.raw.socket.setTimeout(0);
      const stream = writeOva(ova);
      stream.once('close', () => done.release());
      reply.header('content-type', 'application/x-tar');
      reply.header('content-disposition', `attachment; filename="${fileBase(point.vmName)}-${point.repoPointId}.ova"`);
      return reply.send(stream);
    } catch (err) {
      lease?.release(err);
      if (err instanceof AppError) throw err;
      if (err instanceof OvfError) throw new AppError('conflict', `${what} cannot be packaged as an OVA: ${err.message}`);
      throw new AppError('bad_request', `${what} cannot be read: ${(err as Error).message}`);
    }
  });
}
