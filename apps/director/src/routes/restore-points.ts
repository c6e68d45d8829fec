/**
 * Restore points: listing, downloading one disk of one as a raw image or a
 * streamOptimized VMDK (what `qemu-img`, ESXi imports and OVF tools read), and
 * the whole VM as an OVA (OVF descriptor from the recorded hardware + one
 * streamOptimized VMDK per disk), all streamed straight from the repository
 * without a temporary copy. Downloads need the operator role: they hand out
 * every byte of the VM's disks, which a viewer may not take away.
 */
import { Readable } from 'node:stream';
import type { RestorePointDetail } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { DiskReader, type Repository } from '@vaultline/repository';
import { adapterTypeFor, createOva, OvfError, parseOvfHardware, writeOva, writeStreamOptimized, type OvaDisk } from '@vaultline/vmdk';
import { parseDatastorePath, type HardwareDescription } from '@vaultline/vsphere';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { openRecordedRepository } from '../services/repositories.ts';
import { restorePointDtos } from '../services/restore-points.ts';
import { parse } from '../validate.ts';

const STEP = 4 * 1024 * 1024;

async function* rawImage(reader: DiskReader, capacity: number, close: () => Promise<void>): AsyncGenerator<Buffer> {
  try {
    for (let off = 0; off < capacity; off += STEP) yield await reader.read(off, Math.min(STEP, capacity - off));
  } finally {
    await close();
  }
}

const fileBase = (vmName: string) => vmName.replace(/[^A-Za-z0-9._-]/g, '_');

export async function restorePointRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; secretKey: Buffer }): Promise<void> {
  const { db } = deps;

  app.get('/api/restore-points', async (request) => {
    const q = parse(z.object({ vm: z.string().optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }), request.query);
    const rows = await db.restorePoint.findMany({ where: q.vm ? { OR: [{ vmName: q.vm }, { vmInstanceUuid: q.vm }] } : {}, orderBy: { createdAt: 'desc' }, take: q.limit });
    return restorePointDtos(db, rows);
  });

  /** One restore point with what a restore offers: origin vCenter, recorded hardware, disks and NIC networks. */
  app.get('/api/restore-points/:id', async (request): Promise<RestorePointDetail> => {
    const { id } = parse(z.object({ id: z.uuid() }), request.params);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const origin = point.runVmId ? await db.runVm.findUnique({ where: { id: point.runVmId }, select: { vmMoref: true, run: { select: { job: { select: { vcenterId: true } } } } } }) : null;
    let repo: Repository | null = null;
    try {
      repo = await openRecordedRepository(db, point.repository, deps.secretKey);
      const m = await repo.readManifest({ vmId: point.vmInstanceUuid, id: point.repoPointId });
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
    } finally {
      await repo?.close().catch(() => undefined);
    }
  });

  app.get('/api/restore-points/:id/disks', async (request) => {
    const { id } = parse(z.object({ id: z.uuid() }), request.params);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const repo = await openRecordedRepository(db, point.repository, deps.secretKey);
    try {
      const m = await repo.readManifest({ vmId: point.vmInstanceUuid, id: point.repoPointId });
      return m.disks.map((d) => ({ key: d.key, capacityBytes: d.capacity, controller: d.controller ?? null, transport: d.transport ?? null }));
    } finally {
      await repo.close();
    }
  });

  app.get('/api/restore-points/:id/disks/:key/download', { config: { minRole: 'operator' } }, async (request, reply) => {
    const { id, key } = parse(z.object({ id: z.uuid(), key: z.string().regex(/^[A-Za-z0-9:._-]{1,64}$/) }), request.params);
    const { format } = parse(z.object({ format: z.enum(['raw', 'vmdk']).default('vmdk') }), request.query);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    let repo: Repository | null = null;
    try {
      repo = await openRecordedRepository(db, point.repository, deps.secretKey);
      const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
      const manifest = await repo.readManifest(ref);
      const disk = manifest.disks.find((d) => d.key === key);
      if (!disk) throw new AppError('not_found', `restore point has no disk ${key} (it has ${manifest.disks.map((d) => d.key).join(', ')})`);
      const reader = await DiskReader.open(repo, ref, key);
      const r = repo;
      const close = async () => {
        await r.close().catch(() => undefined);
      };
      await deps.audit.record({ actor: request.user!.username, action: 'restore-point.download', subject: `${point.vmName} ${point.repoPointId} disk ${key}`, detail: { format }, ip: request.ip });
      const base = `${fileBase(point.vmName)}-${point.repoPointId}-disk${key}`;
      repo = null; // the stream closes it
      if (format === 'raw') {
        reply.header('content-type', 'application/octet-stream');
        reply.header('content-length', String(disk.capacity));
        reply.header('content-disposition', `attachment; filename="${base}.img"`);
        return reply.send(Readable.from(rawImage(reader, disk.capacity, close)));
      }
      const stream = writeStreamOptimized({ capacity: disk.capacity, read: (o, l) => reader.read(o, l) }, { adapterType: adapterTypeFor(disk.controller) });
      stream.once('close', () => void close());
      reply.header('content-type', 'application/x-vmdk');
      reply.header('content-disposition', `attachment; filename="${base}.vmdk"`);
      return reply.send(stream);
    } catch (err) {
      await repo?.close().catch(() => undefined);
      if (err instanceof AppError) throw err;
      throw new AppError('bad_request', `restore point ${point.repoPointId} of ${point.vmName} cannot be read: ${(err as Error).message}`);
    }
  });

  // ?layout=chunked (default): one pass, each VMDK as OVF chunk files, manifest last.
  // ?layout=whole: one file per VMDK for importers that do not read chunks; reads and compresses every disk twice
  // and sends the first byte only after the first pass (see packages/vmdk/src/ova.ts).
  app.get('/api/restore-points/:id/ova', { config: { minRole: 'operator' } }, async (request, reply) => {
    const { id } = parse(z.object({ id: z.uuid() }), request.params);
    const { layout } = parse(z.object({ layout: z.enum(['chunked', 'whole']).default('chunked') }), request.query);
    const point = await db.restorePoint.findUnique({ where: { id }, include: { repository: true } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const what = `restore point ${point.repoPointId} of ${point.vmName}`;
    let repo: Repository | null = null;
    try {
      repo = await openRecordedRepository(db, point.repository, deps.secretKey);
      const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
      const manifest = await repo.readManifest(ref);
      const recorded = (manifest.vm ?? {}) as { hardware?: unknown };
      if (recorded.hardware === undefined || recorded.hardware === null) {
        throw new AppError('conflict', `${what} holds no hardware description, so it cannot be packaged as a VM; download its disks one by one (GET /api/restore-points/${id}/disks/<key>/download)`);
      }
      const hardware = parseOvfHardware(recorded.hardware);
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
      await deps.audit.record({ actor: request.user!.username, action: 'restore-point.download', subject: `${point.vmName} ${point.repoPointId} OVA`, detail: { format: 'ova', layout }, ip: request.ip });
      const r = repo;
      repo = null; // the stream closes it
      const stream = writeOva(ova);
      stream.once('close', () => void r.close().catch(() => undefined));
      reply.header('content-type', 'application/x-tar');
      reply.header('content-disposition', `attachment; filename="${fileBase(point.vmName)}-${point.repoPointId}.ova"`);
      return reply.send(stream);
    } catch (err) {
      await repo?.close().catch(() => undefined);
      if (err instanceof AppError) throw err;
      if (err instanceof OvfError) throw new AppError('conflict', `${what} cannot be packaged as an OVA: ${err.message}`);
      throw new AppError('bad_request', `${what} cannot be read: ${(err as Error).message}`);
    }
  });
}
