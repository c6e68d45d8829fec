/**
 * Instant recovery's vSphere calls against the lab vCenter: an exported folder holding a VM mounted as an NFS
 * datastore (CreateNasDatastore), the VM registered from its .vmx, moved while it runs to a local datastore
 * (RelocateVM_Task, file names read back), the NFS datastore unmounted; and the refusals on the way.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDatastorePath, VimFault, vmxFromHardware, VSphereClient } from '../src/index.ts';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let lab: Lab;
let client: VSphereClient;
let work: string;
let inv: { datacenter: string; vmFolder: string; resourcePool: string; host: string; local: { moref: string; name: string } };

/** A VM's folder as instant recovery will present it: .vmx, a descriptor and a flat extent with data. */
function writeVm(dir: string, name: string, data: Buffer): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}-flat.vmdk`), data);
  fs.writeFileSync(
    path.join(dir, `${name}.vmdk`),
    `# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\n` +
      `RW ${data.length / 512} VMFS "${name}-flat.vmdk"\n\n#DDB\nddb.adapterType = "lsilogic"\nddb.virtualHWVersion = "13"\n`,
  );
  fs.writeFileSync(
    path.join(dir, `${name}.vmx`),
    [
      'config.version = "8"',
      'virtualHW.version = "13"',
      `displayName = "${name}"`,
      'guestOS = "debian10-64"',
      'memSize = "1024"',
      'numvcpus = "1"',
      'scsi0.present = "TRUE"',
      'scsi0.virtualDev = "pvscsi"',
      'scsi0:0.present = "TRUE"',
      'scsi0:0.deviceType = "scsi-hardDisk"',
      `scsi0:0.fileName = "${name}.vmdk"`,
    ].join('\n') + '\n',
  );
}

beforeAll(async () => {
  lab = await startLab({});
  client = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
  const all = await client.inventory.all();
  const cluster = all.clusters[0]!;
  const local = all.datastores.find((d) => d.name === lab.datastores[0]!.name)!;
  inv = { datacenter: all.datacenters[0]!.name, vmFolder: all.datacenters[0]!.vmFolder, resourcePool: cluster.resourcePool!, host: cluster.hosts[0]!, local: { moref: local.moref, name: local.name } };
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-nas-client-'));
});
afterAll(async () => {
  await client?.close();
  await lab?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('NFS datastore, register and Storage vMotion (lab)', () => {
  const data = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(4 * MiB), randomBytes(1 * MiB)]);
  let ds: string;
  let vm: string;

  it('refuses an export the server does not have, naming the mount', async () => {
    const e = await client.datastores.mountNfs(inv.host, { remoteHost: '127.0.0.1', remotePath: path.join(work, 'nothing-here'), name: 'ir-missing' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VimFault);
    expect((e as VimFault).message).toMatch(/CreateNasDatastore ir-missing .*failed.*NFS mount/);
  });

  it('mounts the export, registers the VM from it, and its disk reads what the export holds', async () => {
    const exportDir = path.join(work, 'export');
    writeVm(path.join(exportDir, 'ir-app'), 'ir-app', data);
    await lab.nasExport('127.0.0.1', '/vaultline/ir-1', exportDir);
    ds = await client.datastores.mountNfs(inv.host, { remoteHost: '127.0.0.1', remotePath: '/vaultline/ir-1', name: 'vaultline-ir-1' });
    const again = await client.datastores.mountNfs(inv.host, { remoteHost: '127.0.0.1', remotePath: '/vaultline/ir-1', name: 'vaultline-ir-1' }).catch((x: unknown) => x);
    expect((again as VimFault).faultType).toBe('DuplicateName');
    vm = await client.vms.register({ vmxPath: '[vaultline-ir-1] ir-app/ir-app.vmx', folder: inv.vmFolder, resourcePool: inv.resourcePool, host: inv.host, name: 'ir-app (recovered)' });
    const layout = await client.vms.layoutFiles(vm);
    const disk = layout.find((f) => f.type === "diskExtent")!;
    expect(parseDatastorePath(disk.name).datastore).toBe('vaultline-ir-1');
    const got = await client.files.get({ datacenter: inv.datacenter, ...parseDatastorePath(disk.name) });
    expect(sha(got)).toBe(sha(data));
  });

  it('will not unmount while the registered VM has files on it', async () => {
    const e = await client.datastores.unmount(inv.host, ds).catch((x: unknown) => x);
    expect((e as VimFault).faultType).toBe('ResourceInUse');
  });

  it('moves the running VM to a local datastore bit-exact; the files are read back under their new names; then unmounts', async () => {
    await client.vms.powerOn(vm);
    const progress: number[] = [];
    await client.vms.relocate(vm, { datastore: inv.local.moref }, { onProgress: (p: number) => progress.push(p) });
    const files = await client.vms.layoutFiles(vm);
    expect(files.every((f) => parseDatastorePath(f.name).datastore === inv.local.name), files.map((f) => f.name).join(', ')).toBe(true);
    const disk = files.find((f) => f.type === 'diskExtent')!;
    const got = await client.files.get({ datacenter: inv.datacenter, ...parseDatastorePath(disk.name) });
    expect(sha(got)).toBe(sha(data));
    await client.datastores.unmount(inv.host, ds);
    // Storage vMotion removed the source files from the (writable) export; the unmount left the export itself.
    expect(fs.existsSync(path.join(work, 'export', 'ir-app', 'ir-app-flat.vmdk'))).toBe(false);
    expect(fs.statSync(path.join(work, 'export')).isDirectory()).toBe(true);
    const all = await client.inventory.all();
    expect(all.datastores.some((d) => d.moref === ds)).toBe(false);
  });

  it('a .vmx written from a lab VM\'s recorded hardware registers as that hardware, marked with the recovery', async () => {
    const all = await client.inventory.all();
    const source = all.vms.find((v) => !v.template && v.name !== 'ir-app (recovered)')!;
    const snap = await client.snapshots.create(source.moref, { runId: 'nas-lab-vmx' });
    const hw = await client.snapshots.hardware(snap);
    expect(hw.disks.length).toBeGreaterThan(0);
    const dir = path.join(work, 'export2', 'from-hw');
    fs.mkdirSync(dir, { recursive: true });
    const files = new Map<number, string>();
    hw.disks.forEach((d, i) => {
      const name = `disk${i}`;
      fs.writeFileSync(path.join(dir, `${name}-flat.vmdk`), '');
      fs.truncateSync(path.join(dir, `${name}-flat.vmdk`), d.capacityBytes);
      fs.writeFileSync(path.join(dir, `${name}.vmdk`), `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\nRW ${d.capacityBytes / 512} VMFS "${name}-flat.vmdk"\n`);
      files.set(d.key, `${name}.vmdk`);
    });
    fs.writeFileSync(path.join(dir, 'from-hw.vmx'), vmxFromHardware(hw, { name: 'from-hw', recoveryId: 'ir-lab-1', diskFiles: files }));
    await lab.nasExport('127.0.0.1', '/vaultline/ir-2', path.join(work, 'export2'));
    const ds2 = await client.datastores.mountNfs(inv.host, { remoteHost: '127.0.0.1', remotePath: '/vaultline/ir-2', name: 'vaultline-ir-2' });
    const vm2 = await client.vms.register({ vmxPath: '[vaultline-ir-2] from-hw/from-hw.vmx', folder: inv.vmFolder, resourcePool: inv.resourcePool, host: inv.host });
    const snap2 = await client.snapshots.create(vm2, { runId: 'nas-lab-vmx-2' });
    const got = await client.snapshots.hardware(snap2);
    expect([got.name, got.memoryMiB, got.numCpu]).toEqual(['from-hw', hw.memoryMiB, hw.numCpu]);
    const slots = (h: typeof hw) => h.disks.map((d) => `${d.controller}${d.busNumber}:${d.unitNumber}=${d.capacityBytes}`).sort();
    expect(slots(got)).toEqual(slots(hw));
    expect(await client.vms.instantRecoveryIdOf(vm2)).toBe('ir-lab-1');
    expect(await client.vms.restoreIdOf(vm2)).toBeUndefined();
    expect(await client.vms.instantRecoveryIdOf(source.moref)).toBeUndefined();
    await client.snapshots.remove(snap2);
    await client.snapshots.remove(snap);
    // Unregistered, the VM's files stay on the export, and the datastore can go.
    await client.vms.unregister(vm2);
    await client.datastores.unmount(inv.host, ds2);
    expect(fs.existsSync(path.join(dir, 'from-hw.vmx'))).toBe(true);
    expect((await client.inventory.all()).vms.some((v) => v.moref === vm2)).toBe(false);
  });
});
