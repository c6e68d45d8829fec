/**
 * A restore onto KVM/Proxmox (a restore request with `kvm`): the restore point's disks converted to thin
 * qcow2 or raw images, with a libvirt domain, a Proxmox qm configuration and NOTES, written into a folder
 * of this Transporter's KVM export folder. No vCenter is involved. A cancel stops the conversion between
 * reads and leaves the folder empty.
 */
import path from 'node:path';
import type { KvmRestoreTarget, RestoreRequest } from '@vaultline/contracts';
import { CancelledError, mib, type RunRecorder } from '@vaultline/core';
import { restoreToKvm, type NetworkMap } from '@vaultline/kvm';
import type { Repository, RestorePointRef } from '@vaultline/repository';

export interface KvmRestoreJob {
  repo: Repository;
  ref: RestorePointRef;
  request: RestoreRequest & { kvm: KvmRestoreTarget };
  /** Where this Transporter writes restores to KVM (VAULTLINE_KVM_EXPORT_DIR). */
  exportDir: string;
  isCancelled(): boolean;
}

const PHASES = { plan: 'preflight', check: 'preflight', convert: 'writing', configure: 'writing', deliver: 'writing', done: 'done' } as const;

export async function runKvmRestore(rec: RunRecorder, job: KvmRestoreJob): Promise<void> {
  const { kvm } = job.request;
  const dir = path.join(job.exportDir, kvm.folder);
  const networks: NetworkMap = { map: kvm.networks, default: kvm.defaultNetwork };
  rec.log('info', `restoring onto KVM as ${job.request.name}: ${kvm.format} disks, libvirt domain${kvm.proxmox ? ` and Proxmox VM ${kvm.proxmox.vmid} on storage ${kvm.proxmox.storage}` : ''}, into ${dir}`);
  const abort = new AbortController();
  const poll = setInterval(() => {
    if (job.isCancelled()) abort.abort(new CancelledError());
  }, 250);
  try {
    const result = await restoreToKvm({
      repo: job.repo,
      ref: job.ref,
      format: kvm.format,
      networks,
      name: job.request.name,
      ...(kvm.proxmox ? { proxmox: { vmid: kvm.proxmox.vmid, storage: kvm.proxmox.storage, storageType: kvm.proxmox.storageType, bridges: { map: kvm.proxmox.bridges, default: kvm.proxmox.defaultBridge } } } : {}),
      target: { kind: 'directory', dir },
      signal: abort.signal,
      onPhase: (phase, detail) => {
        if (job.isCancelled()) abort.abort(new CancelledError());
        void rec.phase(PHASES[phase], detail ?? null);
        if (detail) rec.log('info', `${phase}: ${detail}`);
      },
    });
    for (const [i, d] of result.disks.entries()) rec.log('info', `disk ${result.plan.disks[i]?.label ?? i}: ${mib(d.capacity)} as ${path.basename(d.path)}, ${mib(d.allocatedBytes)} allocated`);
    for (const note of result.plan.notes) rec.log('info', `adapted: ${note}`);
    rec.log('info', `written to ${dir}: ${result.files.join(', ')}`);
    await rec.finish('succeeded', null);
  } catch (err) {
    if (abort.signal.aborted) throw new CancelledError();
    throw err;
  } finally {
    clearInterval(poll);
  }
}
