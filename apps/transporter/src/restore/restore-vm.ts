/**
 * Full VM restore to a new VM, over the network (datastore PUT of each disk's
 * flat extent), verified bit-exact by reading every disk back.
 *
 * Safety:
 * - an existing VM is never touched: a name in use is refused before anything
 *   is created;
 * - the new VM carries a restore marker, and a journal row is written BEFORE it
 *   is created; on any failure (or a crash, through the sweep) only a VM with
 *   that marker can be destroyed, so a source VM can never be;
 * - the restore succeeds only when each written disk's SHA-256, read back from
 *   the datastore, equals the restore point's.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from '@vaultline/logger';
import { DiskReader, type Manifest, type Repository, type RestorePointRef } from '@vaultline/repository';
import { createSpecFromHardware, flatExtentPath, parseDatastorePath, type HardwareDescription, type VSphereClient } from '@vaultline/vsphere';
import type { CleanupJournal } from '../backup/journal.ts';

const STEP = 4 * 1024 * 1024;

export class RestoreError extends Error {
  override name = 'RestoreError';
}

export interface RestoreVmInput {
  repo: Repository;
  ref: RestorePointRef;
  /** Name of the new VM (must not exist). */
  name: string;
  /** Unique id of this restore, stored in the new VM as its marker. */
  restoreId: string;
  /** Where to put it; defaults are the source VM's folder, pool, host and first datastore. */
  placement?: { folder?: string; resourcePool?: string; host?: string; datastore?: string };
  powerOn?: boolean;
  vcenterId?: string;
}

export interface RestoredDisk {
  key: string;
  fileName: string;
  capacityBytes: number;
  sha256: string;
}

export interface RestoreVmResult {
  vmMoref: string;
  disks: RestoredDisk[];
}

async function sha256Of(reader: { read(o: number, l: number): Promise<Buffer> }, capacity: number): Promise<string> {
  const h = createHash('sha256');
  for (let off = 0; off < capacity; off += STEP) h.update(await reader.read(off, Math.min(STEP, capacity - off)));
  return h.digest('hex');
}

export async function restoreVm(input: RestoreVmInput, deps: { client: VSphereClient; journal: CleanupJournal; log: Logger; progress?: (m: string) => void }): Promise<RestoreVmResult> {
  const { client, journal } = deps;
  const say = deps.progress ?? (() => undefined);
  const manifest: Manifest = await input.repo.readManifest(input.ref);
  const meta = (manifest.vm ?? {}) as { moref?: string; name?: string; hardware?: HardwareDescription | null };
  if (!meta.hardware) throw new RestoreError(`restore point ${manifest.id} holds no hardware description; restore its disks instead`);
  const hw = meta.hardware;

  const vms = await client.inventory.vms();
  if (vms.some((v) => v.name === input.name)) throw new RestoreError(`a VM named ${input.name} already exists; choose another name (Vaultline never overwrites a VM)`);

  // Placement: the operator's, else the source VM's.
  const source = meta.moref ? vms.find((v) => v.moref === meta.moref) : undefined;
  const from = source ? await client.vms.placement(source.moref) : {};
  const folder = input.placement?.folder ?? from.folder;
  const resourcePool = input.placement?.resourcePool ?? from.resourcePool;
  const datastore = input.placement?.datastore ?? (hw.disks[0] ? parseDatastorePath(hw.disks[0].fileName).datastore : source?.datastores[0]);
  if (!folder || !resourcePool || !datastore) throw new RestoreError('the source VM is gone: choose a folder, resource pool and datastore for the restored VM');

  // Room on the target datastore for the disks.
  const inv = await client.inventory.all();
  const ds = inv.datastores.find((d) => d.name === datastore);
  if (!ds) throw new RestoreError(`datastore ${datastore} does not exist`);
  const needed = manifest.disks.reduce((n, d) => n + d.capacity, 0);
  if (ds.freeBytes >= 0 && ds.freeBytes < needed) {
    throw new RestoreError(`datastore ${datastore} has ${Math.floor(ds.freeBytes / 2 ** 20)} MiB free; the disks need ${Math.ceil(needed / 2 ** 20)} MiB`);
  }

  const jid = await journal.add('restore_vm', { restoreId: input.restoreId, name: input.name, vm: null }, input.vcenterId ? { vcenterId: input.vcenterId } : {});
  let vmMoref: string | null = null;
  try {
    const spec = createSpecFromHardware(hw, { name: input.name, restoreId: input.restoreId, folder, resourcePool, host: input.placement?.host ?? from.host, datastore });
    vmMoref = await client.vms.create(spec);
    await journal.update(jid, { restoreId: input.restoreId, name: input.name, vm: vmMoref });
    say(`created VM ${input.name} (${vmMoref})`);

    // The new VM's disks are created in the order of the hardware description.
    const created = (await client.inventory.vm(vmMoref)).disks;
    const disks: RestoredDisk[] = [];
    for (let i = 0; i < hw.disks.length; i++) {
      const src = hw.disks[i]!;
      const target = created[i];
      const key = String(src.key);
      const md = manifest.disks.find((d) => d.key === key);
      if (!md) throw new RestoreError(`restore point ${manifest.id} has no data for disk ${src.label ?? key}`);
      if (!target) throw new RestoreError(`the new VM has no disk for ${src.label ?? key}`);
      const { datastore: dsName, path } = parseDatastorePath(target.fileName);
      const dc = inv.datastores.find((d) => d.name === dsName)?.datacenter;
      if (!dc) throw new RestoreError(`datastore ${dsName} of the new disk is not in the inventory`);
      const file = { datacenter: dc, datastore: dsName, path: flatExtentPath(path) };

      const reader = await DiskReader.open(input.repo, input.ref, key);
      const expected = createHash('sha256');
      let readError: Error | null = null;
      async function* body(): AsyncGenerator<Buffer> {
        for (let off = 0; off < md!.capacity; off += STEP) {
          let chunk: Buffer;
          try {
            chunk = await reader.read(off, Math.min(STEP, md!.capacity - off));
          } catch (err) {
            readError = err as Error;
            throw err;
          }
          expected.update(chunk);
          yield chunk;
        }
      }
      say(`writing ${src.label ?? key} (${md.capacity} bytes) over the network`);
      try {
        await client.files.put(file, Readable.from(body()), { size: md.capacity });
      } catch (err) {
        // A failure of the repository read surfaces as a failed upload: name the real cause.
        if (readError) throw new RestoreError(`restore point ${manifest.id} is damaged: ${(readError as Error).message}; run a repository verify`);
        throw err;
      }
      const want = expected.digest('hex');
      // Verify: read what the datastore now holds.
      const got = await sha256Of({ read: (o, l) => client.files.readRange(file, o, l) }, md.capacity);
      if (got !== want) throw new RestoreError(`disk ${src.label ?? key} of ${input.name} reads back with SHA-256 ${got}, the restore point has ${want}`);
      say(`verified ${src.label ?? key}: SHA-256 ${got}`);
      disks.push({ key, fileName: target.fileName, capacityBytes: md.capacity, sha256: got });
    }
    if (input.powerOn) await client.vms.powerOn(vmMoref);
    await journal.resolve(jid);
    return { vmMoref, disks };
  } catch (err) {
    if (vmMoref) {
      try {
        await client.vms.destroyRestored(vmMoref, input.restoreId);
        await journal.resolve(jid);
        say(`removed the half-restored VM ${input.name}`);
      } catch (e) {
        await journal.failed(jid, (e as Error).message).catch(() => undefined);
      }
    } else {
      await journal.failed(jid, 'the VM may have been created before the failure').catch(() => undefined);
    }
    throw err;
  }
}

export interface RestoreDiskInput {
  repo: Repository;
  ref: RestorePointRef;
  /** Disk key in the restore point. */
  diskKey: string;
  /** The existing VM that receives the disk as a new one (its own disks are never touched). */
  targetVm: string;
  /** Datastore for the new disk file; default: the target VM's first disk's. */
  datastore?: string;
}

/**
 * Restores one disk of a restore point as a NEW disk of an existing VM: a new
 * thin disk is created on a free SCSI unit (CreateFile through ReconfigVM),
 * written over the network and read back. On failure the new disk is detached
 * again (its file, named *-restored-*, stays on the datastore for the operator
 * to inspect or delete); an existing disk is never replaced or written.
 */
export async function restoreDisk(input: RestoreDiskInput, deps: { client: VSphereClient; log: Logger }): Promise<RestoredDisk> {
  const { client } = deps;
  const manifest = await input.repo.readManifest(input.ref);
  const md = manifest.disks.find((d) => d.key === input.diskKey);
  if (!md) throw new RestoreError(`restore point ${manifest.id} has no disk ${input.diskKey} (it has ${manifest.disks.map((d) => d.key).join(', ')})`);
  const vm = await client.inventory.vm(input.targetVm);
  const devices = await client.hotadd.devicesOf(input.targetVm);
  const { HotAddApi, newDiskChange } = await import('@vaultline/vsphere');
  const slot = HotAddApi.chooseSlot(devices);
  const datastore = input.datastore ?? (vm.disks[0] ? parseDatastorePath(vm.disks[0].fileName).datastore : undefined);
  if (!datastore) throw new RestoreError(`${vm.name} has no disk to take a datastore from; name one`);
  const dir = vm.vmPathName ? parseDatastorePath(vm.vmPathName).path.replace(/[^/]*$/, '') : `${vm.name}/`;
  const fileName = `[${datastore}] ${dir}${vm.name}-restored-${input.diskKey}-${Date.now()}.vmdk`;
  const before = new Set(devices.disks.map((d) => d.key));
  await client.vms.reconfigure(input.targetVm, {
    deviceChange: [newDiskChange({ key: -300, fileName, controllerKey: slot.controller.key, unitNumber: slot.unitNumber, capacityBytes: md.capacity, thin: true })],
  });
  const added = (await client.inventory.vm(input.targetVm)).disks.find((d) => !before.has(d.key));
  if (!added) throw new RestoreError(`the new disk did not appear on ${vm.name}`);
  try {
    return await fillDisk(client, input, md.capacity, added.fileName, vm.name, deps.log);
  } catch (err) {
    await client.hotadd.detach(input.targetVm, added.key, { expectFileName: added.fileName }).catch(() => undefined);
    throw err;
  }
}

async function fillDisk(client: VSphereClient, input: RestoreDiskInput, capacity: number, fileName: string, vmName: string, log: Logger): Promise<RestoredDisk> {
  const md = { capacity };
  const { datastore: dsName, path } = parseDatastorePath(fileName);
  const dc = (await client.inventory.all()).datastores.find((d) => d.name === dsName)?.datacenter;
  if (!dc) throw new RestoreError(`datastore ${dsName} is not in the inventory`);
  const file = { datacenter: dc, datastore: dsName, path: flatExtentPath(path) };
  const reader = await DiskReader.open(input.repo, input.ref, input.diskKey);
  const expected = createHash('sha256');
  async function* body(): AsyncGenerator<Buffer> {
    for (let off = 0; off < md!.capacity; off += STEP) {
      const chunk = await reader.read(off, Math.min(STEP, md!.capacity - off));
      expected.update(chunk);
      yield chunk;
    }
  }
  await client.files.put(file, Readable.from(body()), { size: md.capacity });
  const want = expected.digest('hex');
  const got = await sha256Of({ read: (o, l) => client.files.readRange(file, o, l) }, md.capacity);
  if (got !== want) throw new RestoreError(`the restored disk on ${vmName} reads back with SHA-256 ${got}, the restore point has ${want}`);
  log.info({ vm: vmName, fileName }, 'disk restored and verified');
  return { key: input.diskKey, fileName, capacityBytes: md.capacity, sha256: got };
}
