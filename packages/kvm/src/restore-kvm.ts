/**
 * Restore to KVM/Proxmox, one entry for the whole job: plan (recorded hardware → bus, NICs, firmware,
 * disk order) → checks (networks mapped, target reachable with its pinned key, space) → convert each
 * disk (raw or qcow2, thin) → libvirt domain XML, Proxmox qm configuration and import script, NOTES →
 * deliver (a directory, or over SSH to the host).
 *
 * Everything that can be refused is refused before the first disk is converted: an unmapped network,
 * a non-empty target directory, a wrong host key. Nothing is changed inside the guest; NOTES.txt says
 * what was adapted (bus, NIC model) and what the admin still has to do.
 */
import * as fs from 'node:fs';
import path from 'node:path';
import type { Repository, RestorePointRef } from '@vaultline/repository';
import type { ConvertedDisk } from './convert.ts';
import { convertDisk } from './convert.ts';
import { checkSshTarget, deliverOverSsh, prepareDirectory, writeBundleFiles, type DeliveredFile, type SshDelivery } from './deliver.ts';
import type { DiskBus, KvmPlan, NetworkMap } from './hardware.ts';
import { KvmRestoreError, mapNetworks, planKvmRestore } from './hardware.ts';
import type { ImageFormat } from './libvirt.ts';
import { libvirtDomainXml } from './libvirt.ts';
import type { ProxmoxBridges, ProxmoxConfig } from './proxmox.ts';
import { proxmoxConfig } from './proxmox.ts';

export type KvmTarget =
  | { kind: 'directory'; dir: string }
  /** `stagingDir` (local, empty or new) holds the bundle while it is made; it is removed after delivery unless `keepStaging`. */
  | ({ kind: 'ssh'; stagingDir: string; keepStaging?: boolean } & SshDelivery);

export interface KvmRestoreRequest {
  repo: Repository;
  ref: RestorePointRef;
  format: ImageFormat;
  /** vSphere network → libvirt network or bridge. */
  networks: NetworkMap;
  /** The Proxmox side; without it no qm configuration is made (NOTES says so). */
  proxmox?: { vmid: number; storage: string; storageType?: 'block' | 'file'; bridges: ProxmoxBridges } | undefined;
  /** Name of the new VM (default: the recorded name). */
  name?: string | undefined;
  /** Overrides the bus chosen for the guest (said in NOTES). */
  bus?: DiskBus | undefined;
  target: KvmTarget;
  signal?: AbortSignal | undefined;
  /** Phase and per-disk progress, for the run log. */
  onPhase?: ((phase: 'plan' | 'check' | 'convert' | 'configure' | 'deliver' | 'done', detail?: string) => void) | undefined;
}

export interface KvmRestoreResult {
  plan: KvmPlan;
  /** Where the bundle is on this machine (removed after an SSH delivery unless keepStaging). */
  localDir: string;
  /** Where the VM's files are for the hypervisor: the directory, or the remote directory. */
  hostDir: string;
  disks: ConvertedDisk[];
  /** Names of the files of the bundle. */
  files: string[];
  domainXml: string;
  proxmox: ProxmoxConfig | null;
  notes: string;
  delivered?: DeliveredFile[] | undefined;
}

export const DOMAIN_XML = 'domain.xml';
export const NOTES_TXT = 'NOTES.txt';
export const PROXMOX_SCRIPT = 'import-proxmox.sh';

export function diskFileName(index: number, format: ImageFormat): string {
  return `disk-${index}.${format}`;
}

function notesText(req: KvmRestoreRequest, plan: KvmPlan, hostDir: string, proxmox: ProxmoxConfig | null, disks: ConvertedDisk[]): string {
  const hw = plan.hardware;
  const lines = [
    `Restore to KVM/Proxmox of the VMware VM "${hw.name}" (restore point ${req.ref.id} of ${req.ref.vmId}), made by Vaultline.`,
    '',
    `Hardware: ${hw.numCpu} vCPU (${hw.numCpu / hw.numCoresPerSocket} socket(s) x ${hw.numCoresPerSocket} core(s)), ${hw.memoryMiB} MiB memory, ${hw.firmware === 'efi' ? 'UEFI' : 'BIOS'}, q35 machine.`,
    `Disks (${req.format}, thin), in boot order on ${plan.bus}:`,
    ...disks.map((d, i) => `  ${diskFileName(i, req.format)}  ${plan.disks[i]!.label ?? `disk ${plan.disks[i]!.key}`}  ${d.capacity} bytes virtual, ${d.allocatedBytes} bytes allocated`),
    '',
    'What was and was not adapted:',
    ...plan.notes.map((n) => `  - ${n}`),
    '  - Nothing was injected into or changed inside the guest: no drivers, no initramfs, no network configuration.',
    '  - VMware Tools stay installed and do nothing on KVM; install qemu-guest-agent in the guest if you want one.',
    '',
    'libvirt:',
    `  virsh define ${path.posix.join(hostDir, DOMAIN_XML)} && virsh start '<name>'   (the disks are referenced at ${hostDir})`,
    '  VNC listens on 127.0.0.1 only; the serial console is on `virsh console`.',
    '',
  ];
  if (proxmox) {
    lines.push(
      'Proxmox VE:',
      `  sh ${path.posix.join(hostDir, PROXMOX_SCRIPT)}   (as root on the node; creates VM ${proxmox.vmid} and imports the disks with qm disk import)`,
      `  ${proxmox.vmid}.conf shows the configuration as it reads after the import; Proxmox names the volumes itself (vm-${proxmox.vmid}-disk-N on a fresh VMID).`,
      `  The converted images in ${hostDir} can be deleted once the import is done.`,
      '',
    );
  } else lines.push('Proxmox VE: no configuration was made (no VMID and storage were given).', '');
  return lines.join('\n');
}

/** The whole restore to KVM/Proxmox; see the module comment. */
export async function restoreToKvm(req: KvmRestoreRequest): Promise<KvmRestoreResult> {
  const phase = req.onPhase ?? (() => undefined);
  phase('plan');
  const manifest = await req.repo.readManifest(req.ref);
  const plan = planKvmRestore(manifest, { bus: req.bus });
  // Networks first: a missing mapping is the most likely mistake and costs nothing to find.
  mapNetworks(plan.hardware.nics, req.networks);
  const t = req.target;
  const hostDir = t.kind === 'directory' ? path.resolve(t.dir) : t.remoteDir;
  const images = plan.disks.map((d) => ({ path: path.posix.join(hostDir, diskFileName(d.index, req.format)), format: req.format }));
  // The configs are made (and so checked) before any disk is converted.
  const domainXml = libvirtDomainXml(plan, { name: req.name, disks: images, networks: req.networks });
  const proxmox = req.proxmox ? proxmoxConfig(plan, { ...req.proxmox, name: req.name, images }) : null;

  phase('check');
  const localDir = prepareDirectory(t.kind === 'directory' ? t.dir : t.stagingDir);
  if (t.kind === 'ssh') await checkSshTarget(t);

  const disks: ConvertedDisk[] = [];
  let ok = false;
  try {
    for (const d of plan.disks) {
      phase('convert', `${d.label ?? d.diskKey} → ${diskFileName(d.index, req.format)}`);
      disks.push(await convertDisk({ repo: req.repo, ref: req.ref, diskKey: d.diskKey, path: path.join(localDir, diskFileName(d.index, req.format)), format: req.format, signal: req.signal }));
    }
    phase('configure');
    const notes = notesText(req, plan, hostDir, proxmox, disks);
    const files = [
      ...disks.map((_, i) => diskFileName(i, req.format)),
      ...writeBundleFiles(localDir, {
        [DOMAIN_XML]: { text: domainXml },
        ...(proxmox ? { [`${proxmox.vmid}.conf`]: { text: proxmox.conf }, [PROXMOX_SCRIPT]: { text: proxmox.script, mode: 0o750 } } : {}),
        [NOTES_TXT]: { text: notes },
      }),
    ];
    let delivered: DeliveredFile[] | undefined;
    if (t.kind === 'ssh') {
      phase('deliver', `${t.target.username}@${t.target.host}:${t.remoteDir}`);
      const needed = disks.reduce((n, d) => n + d.allocatedBytes, 0) + 1024 * 1024;
      await checkSshTarget(t, needed);
      delivered = await deliverOverSsh(localDir, files, t);
      if (!t.keepStaging) fs.rmSync(localDir, { recursive: true, force: true });
    }
    ok = true;
    phase('done');
    return { plan, localDir, hostDir, disks, files, domainXml, proxmox, notes, ...(delivered ? { delivered } : {}) };
  } finally {
    // A failed restore leaves nothing half-made in the directory it was given (it was empty or new).
    if (!ok) {
      for (const name of fs.existsSync(localDir) ? fs.readdirSync(localDir) : []) fs.rmSync(path.join(localDir, name), { recursive: true, force: true });
    }
  }
}

export { KvmRestoreError };
