/**
 * Restoring one disk of a restore point as a NEW disk of an existing VM: a new
 * thin disk is created on a free SCSI unit (CreateFile through ReconfigVM),
 * written over the network and read back. (Not through HotAdd: the disk
 * already belongs to the target VM, which may be running and holds its lock.)
 * On failure the new disk is detached again (its file, named *-restored-*,
 * stays on the datastore for the operator to inspect or delete); an existing
 * disk is never replaced or written. The new disk is journaled before it is
 * created and until it is written: a Transporter killed meanwhile leaves a row
 * whose sweep detaches the half-written disk from the VM by its file name.
 */
import type { Logger } from '@vaultline/logger';
import type { Repository, RestorePointRef } from '@vaultline/repository';
import type { CleanupJournal } from '../backup/journal.ts';
import type { DiskUpdate, ProgressSink } from '../backup/progress.ts';
import { RestoreError } from '../errors.ts';
import { parseDatastorePath } from '@vaultline/contracts';
import { writeDisk, type WrittenDisk } from './disk-write.ts';
import type { RestorePort } from './ports.ts';

export interface RestoreDiskInput {
  repo: Repository;
  ref: RestorePointRef;
  /** Disk key in the restore point. */
  diskKey: string;
  /** The existing VM that receives the disk as a new one (its own disks are never touched). */
  targetVm: string;
  /** Datastore for the new disk file; default: the target VM's first disk's. */
  datastore?: string;
  runId?: string;
  runVmId?: string;
  vcenterId?: string;
}

export interface RestoreDiskDeps {
  vsphere: RestorePort;
  journal: CleanupJournal;
  log: Logger;
  /** Run-log lines for the operator. */
  runLog?(level: 'info' | 'warn' | 'error', message: string): void;
  progress?: ProgressSink;
  diskPhase?(deviceKey: number, u: DiskUpdate): Promise<void>;
  isCancelled?(): boolean;
}

export async function restoreDisk(input: RestoreDiskInput, deps: RestoreDiskDeps): Promise<WrittenDisk> {
  const { vsphere } = deps;
  const runLog = deps.runLog ?? ((level, message) => deps.log[level](message));
  const manifest = await input.repo.readManifest(input.ref);
  const md = manifest.disks.find((d) => d.key === input.diskKey);
  if (!md) throw new RestoreError(`restore point ${manifest.id} has no disk ${input.diskKey} (it has ${manifest.disks.map((d) => d.key).join(', ')})`);
  const vm = await vsphere.vm(input.targetVm);
  const slot = await vsphere.freeDiskSlot(input.targetVm);
  const datastore = input.datastore ?? (vm.disks[0] ? parseDatastorePath(vm.disks[0].fileName).datastore : undefined);
  if (!datastore) throw new RestoreError(`${vm.name} has no disk to take a datastore from; name one`);
  const inv = await vsphere.inventory();
  const ds = inv.datastores.find((d) => d.name === datastore);
  if (!ds) throw new RestoreError(`datastore ${datastore} does not exist`);
  if (ds.freeBytes >= 0 && ds.freeBytes < md.capacity) throw new RestoreError(`datastore ${datastore} has ${Math.floor(ds.freeBytes / 2 ** 20)} MiB free; the disk needs ${Math.ceil(md.capacity / 2 ** 20)} MiB`);
  const dir = vm.vmPathName ? parseDatastorePath(vm.vmPathName).path.replace(/[^/]*$/, '') : `${vm.name}/`;
  const fileName = `[${datastore}] ${dir}${vm.name}-restored-${input.diskKey}-${Date.now()}.vmdk`;
  const before = new Set(slot.diskKeys);
  const jctx = { ...(input.runVmId ? { runVmId: input.runVmId } : {}), ...(input.vcenterId ? { vcenterId: input.vcenterId } : {}) };
  // The sweep of a disk_attach row detaches the disk with this file from this VM (never deleting the file).
  const jid = await deps.journal.add('disk_attach', { proxyVm: input.targetVm, fileName }, jctx);
  let added: { key: number; fileName: string } | undefined;
  try {
    await vsphere.createDisk(input.targetVm, { controllerKey: slot.controllerKey, unitNumber: slot.unitNumber, fileName, capacityBytes: md.capacity });
    added = (await vsphere.vm(input.targetVm)).disks.find((d) => !before.has(d.key));
    if (!added) throw new RestoreError(`the new disk did not appear on ${vm.name}`);
  } catch (err) {
    // It may exist on the server although the call failed: the row stays for the sweep.
    await deps.journal.failed(jid, (err as Error).message).catch(() => undefined);
    throw err;
  }
  const network = vsphere.networkTransport;
  try {
    const written = await writeDisk(
      {
        vsphere,
        repo: input.repo,
        ref: input.ref,
        network,
        failoverToNetwork: false,
        runId: input.runId,
        runVmId: input.runVmId,
        datacenterOf: () => ds.datacenter,
        runLog,
        progress: deps.progress ?? { disk: () => undefined },
        diskPhase: deps.diskPhase ?? (async () => undefined),
        isCancelled: deps.isCancelled ?? (() => false),
      },
      { sourceKey: input.diskKey, label: `disk ${input.diskKey}`, capacity: md.capacity, fileName: added.fileName, recordedSha256: md.sha256, choice: { transport: network, reasons: ['a disk restore writes over the network: the new disk belongs to the target VM'] } },
    );
    await deps.journal.resolve(jid);
    return written;
  } catch (err) {
    const disk = added;
    await vsphere.detachDisk(input.targetVm, disk.key, disk.fileName).then(
      () => deps.journal.resolve(jid),
      (e: unknown) => deps.journal.failed(jid, (e as Error).message),
    ).catch(() => undefined);
    throw err;
  }
}
