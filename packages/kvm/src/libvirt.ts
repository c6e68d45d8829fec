/**
 * A libvirt domain (`virsh define domain.xml`) for a restore to KVM, made from the restore plan
 * (hardware.ts): q35 machine, BIOS or UEFI, the sockets × cores topology, the disks in boot order on
 * virtio-scsi or SATA, the NICs on the mapped libvirt networks or bridges, a serial console and VNC
 * (listening on localhost only: reach it through an SSH tunnel or virt-manager).
 *
 * Every value that comes from the recorded hardware or the user goes through `xmlText`/`xmlAttr`:
 * VM names from vSphere may hold `<`, `&` and quotes.
 */
import { randomUUID } from 'node:crypto';
import type { KvmPlan, NetworkMap, NetworkTarget } from './hardware.ts';
import { isMac, KvmRestoreError, mapNetworks } from './hardware.ts';

export type ImageFormat = 'raw' | 'qcow2';

export interface DomainDisk {
  /** Absolute path of the image on the KVM host. */
  path: string;
  format: ImageFormat;
}

export interface LibvirtOptions {
  /** Domain name (default: the recorded VM name; `/` is not allowed by libvirt and becomes `-`). */
  name?: string | undefined;
  /** Domain UUID (default: the recorded BIOS UUID, so licences bound to it still match; else a new one). */
  uuid?: string | undefined;
  /** One per planned disk, in the plan's order. */
  disks: DomainDisk[];
  networks: NetworkMap;
  /** Where VNC listens (default 127.0.0.1). */
  vncListen?: string | undefined;
}

export function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function xmlAttr(s: string): string {
  return xmlText(s).replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** XML 1.0 cannot carry most control characters at all, escaped or not. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, ' ');
}

/** The domain name libvirt accepts: no `/`, no control characters, not empty. */
export function libvirtName(name: string): string {
  const out = printable(name).replace(/\//g, '-').replace(/\s+/g, ' ').trim();
  if (!out) throw new KvmRestoreError(`the VM name ${JSON.stringify(name)} leaves nothing usable as a libvirt domain name; give one`);
  return out;
}

/** sda, sdb, … sdz, sdaa, …: the guest-visible target names of SCSI and SATA disks. */
export function sdName(index: number): string {
  let n = index;
  let s = '';
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `sd${s}`;
}

function iface(target: NetworkTarget, model: string, mac: string | undefined): string[] {
  const source = 'network' in target ? `<source network="${xmlAttr(target.network)}"/>` : `<source bridge="${xmlAttr(target.bridge)}"/>`;
  return [
    `    <interface type="${'network' in target ? 'network' : 'bridge'}">`,
    ...(mac ? [`      <mac address="${xmlAttr(mac.toLowerCase())}"/>`] : []),
    `      ${source}`,
    `      <model type="${model}"/>`,
    '    </interface>',
  ];
}

/** The domain XML for `plan`. Throws (naming them) when a recorded network has no target. */
export function libvirtDomainXml(plan: KvmPlan, opts: LibvirtOptions): string {
  const hw = plan.hardware;
  if (opts.disks.length !== plan.disks.length) throw new KvmRestoreError(`${opts.disks.length} disk images given for ${plan.disks.length} disks`);
  for (const d of opts.disks) if (!d.path.startsWith('/')) throw new KvmRestoreError(`disk image path ${JSON.stringify(d.path)} is not absolute`);
  const targets = mapNetworks(hw.nics, opts.networks);
  const uuid = opts.uuid ?? hw.biosUuid ?? randomUUID();
  const sockets = hw.numCpu / hw.numCoresPerSocket;
  const windows = plan.family === 'windows';
  const bus = plan.bus === 'virtio-scsi' ? 'scsi' : 'sata';
  const lines: string[] = [
    '<domain type="kvm">',
    `  <name>${xmlText(libvirtName(opts.name ?? hw.name))}</name>`,
    `  <uuid>${xmlText(uuid)}</uuid>`,
    `  <description>${xmlText(printable(`Restored by Vaultline from the VMware VM ${hw.name}${hw.guestFullName ? ` (${hw.guestFullName})` : ''}`))}</description>`,
    `  <memory unit="MiB">${hw.memoryMiB}</memory>`,
    `  <currentMemory unit="MiB">${hw.memoryMiB}</currentMemory>`,
    `  <vcpu placement="static">${hw.numCpu}</vcpu>`,
    hw.firmware === 'efi' ? '  <os firmware="efi">' : '  <os>',
    '    <type arch="x86_64" machine="q35">hvm</type>',
    // VMware's NVRAM holds no Secure Boot keys we could carry over; firmware auto-selection must not pick an enrolled template.
    ...(hw.firmware === 'efi' ? ['    <firmware>', '      <feature enabled="no" name="secure-boot"/>', '      <feature enabled="no" name="enrolled-keys"/>', '    </firmware>'] : []),
    '  </os>',
    '  <features>',
    '    <acpi/>',
    '    <apic/>',
    // The usual enlightenments: Windows runs noticeably better with them and needs no driver for them.
    ...(windows ? ['    <hyperv mode="custom">', '      <relaxed state="on"/>', '      <vapic state="on"/>', '      <spinlocks state="on" retries="8191"/>', '    </hyperv>'] : []),
    '  </features>',
    '  <cpu mode="host-model" check="partial">',
    `    <topology sockets="${sockets}" dies="1" cores="${hw.numCoresPerSocket}" threads="1"/>`,
    '  </cpu>',
    // Windows keeps the RTC in local time, Linux in UTC (as on VMware, where the guest chose it).
    `  <clock offset="${windows ? 'localtime' : 'utc'}"/>`,
    '  <on_poweroff>destroy</on_poweroff>',
    '  <on_reboot>restart</on_reboot>',
    '  <on_crash>destroy</on_crash>',
    '  <devices>',
    plan.bus === 'virtio-scsi' ? '    <controller type="scsi" index="0" model="virtio-scsi"/>' : '    <controller type="sata" index="0"/>',
  ];
  plan.disks.forEach((d, i) => {
    const img = opts.disks[i]!;
    lines.push(
      '    <disk type="file" device="disk">',
      `      <driver name="qemu" type="${img.format}" discard="unmap"/>`,
      `      <source file="${xmlAttr(img.path)}"/>`,
      `      <target dev="${sdName(i)}" bus="${bus}"/>`,
      // The boot disk is the first: a per-device boot order (not <os><boot>) so UEFI and BIOS both take it.
      ...(i === 0 ? ['      <boot order="1"/>'] : []),
      `      <address type="drive" controller="0" bus="0" target="0" unit="${i}"/>`,
      '    </disk>',
    );
  });
  const model = plan.nicModel;
  hw.nics.forEach((n, i) => lines.push(...iface(targets[i]!, model, isMac(n.macAddress) ? n.macAddress : undefined)));
  lines.push(
    '    <serial type="pty">',
    '      <target port="0"/>',
    '    </serial>',
    '    <console type="pty">',
    '      <target type="serial" port="0"/>',
    '    </console>',
    '    <input type="tablet" bus="usb"/>',
    `    <graphics type="vnc" port="-1" autoport="yes" listen="${xmlAttr(opts.vncListen ?? '127.0.0.1')}"/>`,
    '    <video>',
    '      <model type="vga"/>',
    '    </video>',
    '  </devices>',
    '</domain>',
    '',
  );
  return lines.join('\n');
}
