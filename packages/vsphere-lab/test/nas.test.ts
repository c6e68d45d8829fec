// Instant recovery's lab part: an exported folder mounted as an NFS datastore (CreateNasDatastore), a VM
// registered from its .vmx, its disks read and written where the files are, Storage vMotion (RelocateVM_Task)
// to local datastores bit for bit, RemoveDatastore; and the faults vSphere answers on the way.
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, startLab, type Lab } from '../src/index.ts';
import { httpRequest, tag, tags, type SoapClient } from '../src/soap.ts';
import { createSnapshot, fault, MiB, removeSnapshot, soapDisks } from './helpers.ts';

const isRoot = process.getuid?.() === 0;

let lab: Lab;
let soap: SoapClient;
let work: string;
let inv: { vmFolder: string; resourcePool: string; hosts: string[]; datastores: Record<string, string> };
const dssOf: Record<string, string> = {};

async function inventory(): Promise<typeof inv> {
  const res = await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem });
  return JSON.parse(res.body.toString('utf8')) as typeof inv;
}

beforeAll(async () => {
  lab = await startLab({ hotadd: isRoot, ...(isRoot ? { extraDatastores: [{ name: 'tiny', sizeBytes: 16 * MiB }] } : {}) });
  soap = await lab.soap();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-nas-test-'));
  inv = await inventory();
  for (const h of inv.hosts) {
    const xml = await soap.retrieve('HostSystem', h, ['configManager.datastoreSystem']);
    dssOf[h] = /type="HostDatastoreSystem"[^>]*>([^<]+)</.exec(xml)![1]!;
  }
});
afterAll(async () => {
  await lab?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fileSha = (f: string) => sha(fs.readFileSync(f));

/** A restore point as the appliance exports it: <dir>/<vm>/ with a .vmx, descriptors and flat extents holding data. */
function makeRestorePoint(dir: string, vm: string, disks: { name: string; bytes: number; data: { offset: number; length: number }[] }[]): void {
  const home = path.join(dir, vm);
  fs.mkdirSync(home, { recursive: true });
  const vmx = [
    '.encoding = "UTF-8"',
    'config.version = "8"',
    'virtualHW.version = "13"',
    `displayName = "${vm}"`,
    'guestOS = "debian10-64"',
    'memSize = "2048"',
    'numvcpus = "2"',
    'scsi0.present = "TRUE"',
    'scsi0.virtualDev = "pvscsi"',
  ];
  disks.forEach((d, unit) => {
    const flat = path.join(home, `${d.name}-flat.vmdk`);
    fs.writeFileSync(flat, '');
    fs.truncateSync(flat, d.bytes);
    const fd = fs.openSync(flat, 'r+');
    for (const a of d.data) fs.writeSync(fd, randomBytes(a.length), 0, a.length, a.offset);
    fs.closeSync(fd);
    const uuidHex = randomBytes(16).toString('hex');
    const ddbUuid = `${uuidHex.slice(0, 16).match(/../g)!.join(' ')}-${uuidHex.slice(16).match(/../g)!.join(' ')}`;
    fs.writeFileSync(
      path.join(home, `${d.name}.vmdk`),
      `# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\n` +
        `# Extent description\nRW ${d.bytes / 512} VMFS "${d.name}-flat.vmdk"\n\n# The Disk Data Base\n#DDB\n\n` +
        `ddb.adapterType = "lsilogic"\nddb.thinProvisioned = "1"\nddb.uuid = "${ddbUuid}"\nddb.virtualHWVersion = "13"\n`,
    );
    vmx.push(`scsi0:${unit}.present = "TRUE"`, `scsi0:${unit}.deviceType = "scsi-hardDisk"`, `scsi0:${unit}.fileName = "${d.name}.vmdk"`);
  });
  fs.writeFileSync(path.join(home, `${vm}.vmx`), vmx.join('\n') + '\n');
  fs.writeFileSync(path.join(home, `${vm}.nvram`), randomBytes(8192));
  fs.writeFileSync(path.join(home, 'vmware.log'), 'restored\n');
}

function nasSpec(remoteHost: string, remotePath: string, localPath: string, accessMode = 'readWrite'): string {
  return (
    `<spec><remoteHost>${remoteHost}</remoteHost><remotePath>${remotePath}</remotePath><localPath>${localPath}</localPath>` +
    `<accessMode>${accessMode}</accessMode><type>NFS</type></spec>`
  );
}

async function createNas(host: string, remoteHost: string, remotePath: string, localPath: string, accessMode?: string): Promise<string> {
  const xml = await soap.call(`<CreateNasDatastore><_this type="HostDatastoreSystem">${dssOf[host]}</_this>${nasSpec(remoteHost, remotePath, localPath, accessMode)}</CreateNasDatastore>`);
  return tag(xml, 'returnval')!;
}

async function removeDs(host: string, ds: string): Promise<void> {
  await soap.call(`<RemoveDatastore><_this type="HostDatastoreSystem">${dssOf[host]}</_this><datastore type="Datastore">${ds}</datastore></RemoveDatastore>`);
}

async function hostDatastores(host: string): Promise<string[]> {
  return tags(await soap.retrieve('HostSystem', host, ['datastore']), 'ManagedObjectReference');
}

async function register(vmxPath: string, name?: string): Promise<string> {
  return soap.task(
    `<RegisterVM_Task><_this type="Folder">${inv.vmFolder}</_this><path>${vmxPath}</path>${name ? `<name>${name}</name>` : ''}<asTemplate>false</asTemplate>` +
      `<pool type="ResourcePool">${inv.resourcePool}</pool></RegisterVM_Task>`,
  );
}

function relocateBody(vm: string, datastore?: string, disks: { key: number; datastore: string }[] = []): string {
  return (
    `<RelocateVM_Task><_this type="VirtualMachine">${vm}</_this><spec>` +
    (datastore ? `<datastore type="Datastore">${datastore}</datastore>` : '') +
    disks.map((d) => `<disk><diskId>${d.key}</diskId><datastore type="Datastore">${d.datastore}</datastore></disk>`).join('') +
    `</spec></RelocateVM_Task>`
  );
}

async function folderGet(dsName: string, file: string, range?: string): Promise<{ status: number; body: Buffer }> {
  const url = `${new URL(lab.url).origin}/folder/${file}?dcPath=${encodeURIComponent(lab.datacenter)}&dsName=${encodeURIComponent(dsName)}`;
  return httpRequest(url, { ca: lab.certPem, headers: range ? { Range: range } : {} });
}

async function layoutFiles(vm: string): Promise<string[]> {
  const xml = await soap.retrieve('VirtualMachine', vm, ['layoutEx']);
  return [...xml.matchAll(/<file>[\s\S]*?<name>([^<]+)<\/name>[\s\S]*?<\/file>/g)].map((m) => m[1]!);
}

describe('NFS datastores and Storage vMotion', () => {
  const remoteHost = 'vaultline-appliance.lab';
  let exportDir = '';
  let nas = '';
  let vm = '';
  let sums: string[] = [];

  it('an unknown NFS server or export fails with PlatformConfigFault (a HostConfigFault) naming the mount', async () => {
    const host = inv.hosts[0]!;
    const noServer = await fault(createNas(host, 'nfs.invalid', '/exports/x', 'nope'));
    expect(noServer.faultType).toBe('PlatformConfigFault');
    expect(noServer.message).toContain('NFS mount nfs.invalid:/exports/x failed: Unable to connect to NFS server');
    await lab.nasExport(remoteHost, '/exports/other', work);
    const noExport = await fault(createNas(host, remoteHost, '/exports/missing', 'nope'));
    expect(noExport.faultType).toBe('PlatformConfigFault');
    expect(noExport.message).toContain('denied by the NFS server');
    const loopMissing = await fault(createNas(host, '127.0.0.1', path.join(work, 'no-such-dir'), 'nope'));
    expect(loopMissing.faultType).toBe('PlatformConfigFault');
    expect(Object.keys((await inventory()).datastores)).not.toContain('nope');
  });

  it('CreateNasDatastore mounts the exported folder as an NFS datastore on that host only, with its real capacity', async () => {
    exportDir = path.join(work, 'export-rw');
    makeRestorePoint(exportDir, 'rp-vm', [
      { name: 'rp-vm', bytes: 64 * MiB, data: [{ offset: 0, length: 1 * MiB }, { offset: 20 * MiB, length: 3 * MiB }, { offset: 30 * MiB, length: 16 * MiB }, { offset: 64 * MiB - 4096, length: 4096 }] },
      { name: 'rp-vm_1', bytes: 8 * MiB, data: [{ offset: 1 * MiB, length: 512 * 1024 }] },
    ]);
    fs.writeFileSync(path.join(exportDir, 'restore-point.json'), '{"id":1}');
    sums = ['rp-vm', 'rp-vm_1'].map((d) => fileSha(path.join(exportDir, 'rp-vm', `${d}-flat.vmdk`)));
    await lab.nasExport(remoteHost, '/exports/rp-1', exportDir);
    const [h0, h1] = inv.hosts as [string, string];
    nas = await createNas(h0, remoteHost, '/exports/rp-1', 'rp-1');
    expect(nas).toBeTruthy();
    const xml = await soap.retrieve('Datastore', nas, ['host', 'browser']);
    const summary = await soap.retrieve('Datastore', nas, ['summary']);
    expect(tag(summary, 'type')).toBe('NFS');
    expect(summary).toContain('<name>rp-1</name>');
    expect(tag(summary, 'url')).toMatch(/^ds:\/\/\/vmfs\/volumes\/[0-9a-f]{8}-[0-9a-f]{8}\/$/);
    expect(tag(summary, 'accessible')).toBe('true');
    const st = fs.statfsSync(exportDir);
    expect(Number(tag(summary, 'capacity'))).toBe(st.blocks * st.bsize);
    expect(Number(tag(summary, 'freeSpace'))).toBeGreaterThan(0);
    const info = await soap.retrieve('Datastore', nas, ['info']);
    expect(tag(info, 'remoteHost')).toBe(remoteHost);
    expect(tag(info, 'remotePath')).toBe('/exports/rp-1');
    expect(tag(xml, 'accessMode')).toBe('readWrite');
    expect(await hostDatastores(h0)).toContain(nas);
    expect(await hostDatastores(h1)).not.toContain(nas);

    // The host's datastore browser lists the exported files.
    const browser = /type="HostDatastoreBrowser"[^>]*>([^<]+)</.exec(xml)![1]!;
    const found = await soap.task(
      `<SearchDatastore_Task><_this type="HostDatastoreBrowser">${browser}</_this><datastorePath>[rp-1] rp-vm</datastorePath><searchSpec><matchPattern>*</matchPattern></searchSpec></SearchDatastore_Task>`,
    );
    expect(tags(found, 'path').sort()).toEqual(expect.arrayContaining(['rp-vm.vmx', 'rp-vm.vmdk', 'rp-vm-flat.vmdk', 'rp-vm_1.vmdk']));
  });

  it('the same name for another export is DuplicateName; the same export mounts on a second host as the same datastore', async () => {
    const [h0, h1] = inv.hosts as [string, string];
    await lab.nasExport(remoteHost, '/exports/rp-2', work);
    const dup = await fault(createNas(h1, remoteHost, '/exports/rp-2', 'rp-1'));
    expect(dup.faultType).toBe('DuplicateName');
    expect((await fault(createNas(h0, remoteHost, '/exports/rp-1', 'rp-1'))).faultType).toBe('DuplicateName');
    expect(await createNas(h1, remoteHost, '/exports/rp-1', 'rp-1')).toBe(nas);
    expect(await hostDatastores(h1)).toContain(nas);
    expect(tags(await soap.retrieve('Datastore', nas, ['host']), 'key')).toHaveLength(2);
    await removeDs(h1, nas); // unmount from the second host only
    expect(await hostDatastores(h1)).not.toContain(nas);
    expect(await hostDatastores(h0)).toContain(nas);
  });

  it('RegisterVM_Task brings the .vmx hardware; the disks read what the exported files hold (lab read path, /folder Range)', async () => {
    vm = await register('[rp-1] rp-vm/rp-vm.vmx');
    const xml = await soap.retrieve('VirtualMachine', vm, ['name', 'config.hardware.memoryMB', 'config.hardware.numCPU', 'runtime.host', 'datastore']);
    expect(tag(xml, 'val')).toBeDefined();
    expect(xml).toContain('>rp-vm<');
    expect(xml).toMatch(/<val[^>]*>2048<\/val>/);
    expect(xml).toContain(`>${inv.hosts[0]}<`); // the only host that mounts rp-1
    const disks = await soapDisks(soap, 'VirtualMachine', vm);
    expect(disks.map((d) => d.fileName)).toEqual(['[rp-1] rp-vm/rp-vm.vmdk', '[rp-1] rp-vm/rp-vm_1.vmdk']);
    const labVm = await lab.getVm('rp-vm');
    expect(labVm.disks.map((d) => d.capacityBytes)).toEqual([64 * MiB, 8 * MiB]);
    expect(labVm.disks[0]!.flatPath).toBe(path.join(exportDir, 'rp-vm', 'rp-vm-flat.vmdk'));
    expect(await lab.diskSha256('rp-vm', 0)).toBe(sums[0]);
    expect(await lab.diskSha256('rp-vm', 1)).toBe(sums[1]);
    const range = await folderGet('rp-1', 'rp-vm/rp-vm-flat.vmdk', `bytes=${20 * MiB}-${20 * MiB + 65535}`);
    expect(range.status).toBe(206);
    const local = Buffer.alloc(65536);
    const fd = fs.openSync(path.join(exportDir, 'rp-vm', 'rp-vm-flat.vmdk'), 'r');
    fs.readSync(fd, local, 0, 65536, 20 * MiB);
    fs.closeSync(fd);
    expect(range.body.equals(local)).toBe(true);
  });

  it('guest writes and a read-write HotAdd land in the exported (overlay) files', async () => {
    await soap.task(`<PowerOnVM_Task><_this type="VirtualMachine">${vm}</_this></PowerOnVM_Task>`);
    await lab.guestWrite('rp-vm', 0, [{ offset: 5 * MiB, length: 64 * 1024, pattern: 'random', seed: 5 }]);
    const flat0 = path.join(exportDir, 'rp-vm', 'rp-vm-flat.vmdk');
    const fd = fs.openSync(flat0, 'r');
    const got = Buffer.alloc(64 * 1024);
    fs.readSync(fd, got, 0, got.length, 5 * MiB);
    fs.closeSync(fd);
    expect(got.some((b) => b !== 0)).toBe(true);
    sums[0] = fileSha(flat0);
    expect(await lab.diskSha256('rp-vm', 0)).toBe(sums[0]);

    if (!isRoot) return;
    // HotAdd the second disk to the proxy read-write (as a restore writes), write through the device, detach.
    const ctlXml = await soap.retrieve('VirtualMachine', lab.proxyVm.moref, ['config.hardware.device']);
    const ctl = Number(tag(/<VirtualDevice\b[^>]*type="ParaVirtualSCSIController"[^>]*>([\s\S]*?)<\/VirtualDevice>/.exec(ctlXml)![1]!, 'key'));
    const disk = (file: string, key: number, op: string) =>
      `<ReconfigVM_Task><_this type="VirtualMachine">${lab.proxyVm.moref}</_this><spec><deviceChange><operation>${op}</operation>` +
      `<device xsi:type="VirtualDisk"><key>${key}</key><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>${file}</fileName>` +
      `<diskMode>persistent</diskMode></backing><controllerKey>${ctl}</controllerKey><unitNumber>3</unitNumber><capacityInKB>0</capacityInKB></device>` +
      `</deviceChange></spec></ReconfigVM_Task>`;
    const file = '[rp-1] rp-vm/rp-vm_1.vmdk';
    await soap.task(disk(file, -1, 'add'));
    const att = (await soapDisks(soap, 'VirtualMachine', lab.proxyVm.moref)).find((d) => d.fileName === file)!;
    const dev = fs.readlinkSync(path.join(lab.byIdDir, `wwn-0x${att.uuid.replace(/-/g, '').toLowerCase()}`));
    const data = randomBytes(128 * 1024);
    const dfd = fs.openSync(dev, 'r+');
    fs.writeSync(dfd, data, 0, data.length, 2 * MiB);
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
    await soap.task(disk(file, att.key, 'remove'));
    const flat1 = path.join(exportDir, 'rp-vm', 'rp-vm_1-flat.vmdk');
    const back = Buffer.alloc(data.length);
    const ffd = fs.openSync(flat1, 'r');
    fs.readSync(ffd, back, 0, back.length, 2 * MiB);
    fs.closeSync(ffd);
    expect(back.equals(data)).toBe(true);
    sums[1] = fileSha(flat1);
  });

  it('RemoveDatastore refuses with ResourceInUse while a registered VM has files on it', async () => {
    const f = await fault(removeDs(inv.hosts[0]!, nas));
    expect(f.faultType).toBe('ResourceInUse');
    expect(f.message).toContain('rp-1');
  });

  it('a target datastore without room: NoDiskSpace before anything is copied, the source untouched', async () => {
    if (!isRoot) return;
    const before = await soapDisks(soap, 'VirtualMachine', vm);
    const f = await fault(soap.task(relocateBody(vm, inv.datastores['tiny'])));
    expect(f.faultType).toBe('NoDiskSpace');
    expect(await soapDisks(soap, 'VirtualMachine', vm)).toEqual(before);
    expect(fs.readdirSync(lab.datastores.find((d) => d.name === 'tiny')!.path)).toEqual([]);
    expect(await lab.diskSha256('rp-vm', 0)).toBe(sums[0]);
  });

  it('RelocateVM_Task of the running VM (home + disk 1 to datastore1, disk 2 to datastore2) copies bit-exact, switches backings and layout, deletes the source', async () => {
    const disks = await soapDisks(soap, 'VirtualMachine', vm);
    const task = tag(await soap.call(relocateBody(vm, inv.datastores['datastore1'], [{ key: disks[1]!.key, datastore: inv.datastores['datastore2']! }])), 'returnval')!;
    const seen: { state: string; progress?: number }[] = [];
    await soap.waitTask(task, { onInfo: (i) => seen.push(i) });
    expect(seen[0]!.state).toMatch(/^(queued|running)$/);
    const after = await soapDisks(soap, 'VirtualMachine', vm);
    expect(after.map((d) => d.fileName)).toEqual(['[datastore1] rp-vm/rp-vm.vmdk', '[datastore2] rp-vm/rp-vm_1.vmdk']);
    expect(after.map((d) => d.uuid)).toEqual(disks.map((d) => d.uuid));
    expect(await lab.diskSha256('rp-vm', 0)).toBe(sums[0]);
    expect(await lab.diskSha256('rp-vm', 1)).toBe(sums[1]);
    const ds1 = lab.datastores.find((d) => d.name === 'datastore1')!.path;
    expect(fileSha(path.join(ds1, 'rp-vm', 'rp-vm-flat.vmdk'))).toBe(sums[0]);
    const xml = await soap.retrieve('VirtualMachine', vm, ['config.files.vmPathName', 'datastore', 'runtime.powerState']);
    expect(tag(xml, 'val')).toBe('[datastore1] rp-vm/rp-vm.vmx');
    expect(xml).toContain('poweredOn');
    expect(xml).not.toContain(`>${nas}<`);
    const files = await layoutFiles(vm);
    expect(files).toEqual(expect.arrayContaining(['[datastore1] rp-vm/rp-vm.vmx', '[datastore1] rp-vm/rp-vm.vmdk', '[datastore2] rp-vm/rp-vm_1-flat.vmdk']));
    expect(files.filter((f) => f.startsWith('[rp-1]'))).toEqual([]);
    expect(fs.readFileSync(path.join(ds1, 'rp-vm', 'rp-vm.vmx'), 'utf8')).toContain('displayName = "rp-vm"');
    // vSphere deletes the source files after a successful migration: the export's VM folder is gone.
    expect(fs.existsSync(path.join(exportDir, 'rp-vm'))).toBe(false);
    // The guest keeps writing, now to the copy.
    await lab.guestWrite('rp-vm', 0, [{ offset: 7 * MiB, length: 4096, pattern: 'random', seed: 9 }]);
    expect(fileSha(path.join(ds1, 'rp-vm', 'rp-vm-flat.vmdk'))).not.toBe(sums[0]);
  });

  it('RemoveDatastore then unmounts it and leaves the exported folder as it is', async () => {
    await removeDs(inv.hosts[0]!, nas);
    expect(await hostDatastores(inv.hosts[0]!)).not.toContain(nas);
    expect(Object.keys((await inventory()).datastores)).not.toContain('rp-1');
    expect(fs.readFileSync(path.join(exportDir, 'restore-point.json'), 'utf8')).toBe('{"id":1}');
    expect((await fault(removeDs(inv.hosts[0]!, nas))).faultType).toMatch(/NotFound|ManagedObjectNotFound/);
    // Mounted again later (the next restore of the same point), it is the same folder.
    const again = await createNas(inv.hosts[0]!, remoteHost, '/exports/rp-1', 'rp-1');
    const found = await soap.retrieve('Datastore', again, ['summary']);
    expect(found).toContain('<type>NFS</type>');
    await removeDs(inv.hosts[0]!, again);
  });

  it('a readOnly mount: reads work, writes through the lab fail, Storage vMotion copies and leaves the source files', async () => {
    if (!isRoot) return;
    const roDir = path.join(work, 'export-ro');
    makeRestorePoint(roDir, 'ro-vm', [{ name: 'ro-vm', bytes: 16 * MiB, data: [{ offset: 0, length: 2 * MiB }] }]);
    const sum = fileSha(path.join(roDir, 'ro-vm', 'ro-vm-flat.vmdk'));
    // 127.0.0.1: the remote path is the local folder itself.
    const ro = await createNas(inv.hosts[1]!, '127.0.0.1', roDir, 'rp-ro', 'readOnly');
    expect(tag(await soap.retrieve('Datastore', ro, ['host']), 'accessMode')).toBe('readOnly');
    const put = await httpRequest(
      `${new URL(lab.url).origin}/folder/ro-vm/new.txt?dcPath=${encodeURIComponent(lab.datacenter)}&dsName=rp-ro`,
      { method: 'PUT', body: 'x', ca: lab.certPem },
    );
    expect(put.status).toBe(500);
    expect(fs.existsSync(path.join(roDir, 'ro-vm', 'new.txt'))).toBe(false);
    // Registered under another name than its files carry (a recovered VM's name).
    const roVm = await register('[rp-ro] ro-vm/ro-vm.vmx', 'ro-vm-recovered');
    expect(await lab.diskSha256('ro-vm-recovered', 0)).toBe(sum);
    await expect(lab.guestWrite('ro-vm-recovered', 0, [{ offset: 0, length: 4096, pattern: 'zeros' }])).rejects.toThrow(/read-only/);
    expect(fileSha(path.join(roDir, 'ro-vm', 'ro-vm-flat.vmdk'))).toBe(sum);
    // HotAdd in a persistent (writable) mode still gives a read-only device: the mount is read-only.
    const ctlXml = await soap.retrieve('VirtualMachine', lab.proxyVm.moref, ['config.hardware.device']);
    const ctl = Number(tag(/<VirtualDevice\b[^>]*type="ParaVirtualSCSIController"[^>]*>([\s\S]*?)<\/VirtualDevice>/.exec(ctlXml)![1]!, 'key'));
    const hot = (key: number, op: string) =>
      `<ReconfigVM_Task><_this type="VirtualMachine">${lab.proxyVm.moref}</_this><spec><deviceChange><operation>${op}</operation>` +
      `<device xsi:type="VirtualDisk"><key>${key}</key><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[rp-ro] ro-vm/ro-vm.vmdk</fileName>` +
      `<diskMode>persistent</diskMode></backing><controllerKey>${ctl}</controllerKey><unitNumber>4</unitNumber><capacityInKB>0</capacityInKB></device>` +
      `</deviceChange></spec></ReconfigVM_Task>`;
    // The proxy runs on the first host, which does not mount rp-ro yet: vSphere refuses the disk.
    expect((await fault(soap.task(hot(-1, 'add')))).faultType).toBe('InvalidDatastore');
    expect(await createNas(inv.hosts[0]!, '127.0.0.1', roDir, 'rp-ro', 'readOnly')).toBe(ro);
    await soap.task(hot(-1, 'add'));
    const att = (await soapDisks(soap, 'VirtualMachine', lab.proxyVm.moref)).find((d) => d.fileName === '[rp-ro] ro-vm/ro-vm.vmdk')!;
    const dev = fs.readlinkSync(path.join(lab.byIdDir, `wwn-0x${att.uuid.replace(/-/g, '').toLowerCase()}`));
    expect(spawnSync('blockdev', ['--getro', dev], { encoding: 'utf8' }).stdout.trim()).toBe('1');
    await soap.task(hot(att.key, 'remove'));
    // Nothing can be moved onto it.
    const other = await lab.createVm({ name: 'ro-target', disks: [{ capacityBytes: 4 * MiB }] });
    expect((await fault(soap.task(relocateBody(other.moref, ro)))).faultType).toBe('DatastoreNotWritableOnHost');

    await soap.task(relocateBody(roVm, inv.datastores['datastore2']));
    // Storage vMotion names the folder and the files after the VM's inventory name.
    expect((await soapDisks(soap, 'VirtualMachine', roVm))[0]!.fileName).toBe('[datastore2] ro-vm-recovered/ro-vm-recovered.vmdk');
    expect(tag(await soap.retrieve('VirtualMachine', roVm, ['config.files.vmPathName']), 'val')).toBe('[datastore2] ro-vm-recovered/ro-vm-recovered.vmx');
    const home = path.join(lab.datastores.find((d) => d.name === 'datastore2')!.path, 'ro-vm-recovered');
    expect(fs.readdirSync(home).sort()).toEqual(
      expect.arrayContaining(['ro-vm-recovered.vmx', 'ro-vm-recovered.nvram', 'ro-vm-recovered.vmdk', 'ro-vm-recovered-flat.vmdk', 'vmware.log']),
    );
    expect(fs.readFileSync(path.join(home, 'ro-vm-recovered.vmdk'), 'utf8')).toContain('"ro-vm-recovered-flat.vmdk"');
    expect(fs.readFileSync(path.join(home, 'ro-vm-recovered.vmx'), 'utf8')).toContain('scsi0:0.fileName = "ro-vm-recovered.vmdk"');
    expect(await lab.diskSha256('ro-vm-recovered', 0)).toBe(sum);
    expect(fs.existsSync(path.join(roDir, 'ro-vm', 'ro-vm-flat.vmdk'))).toBe(true);
    await removeDs(inv.hosts[1]!, ro);
    await removeDs(inv.hosts[0]!, ro);
    expect(mountsUnder(path.join(path.dirname(lab.byIdDir)))).toEqual(expect.not.arrayContaining([expect.stringContaining('/nas/')]));
    expect(fileSha(path.join(roDir, 'ro-vm', 'ro-vm-flat.vmdk'))).toBe(sum);
  });

  it('storage and compute in one RelocateVM_Task: the files move, then the VM changes host', async () => {
    const v = await lab.createVm({ name: 'both', disks: [{ capacityBytes: 8 * MiB }], powerOn: true });
    await lab.guestWrite('both', 0, [{ offset: 0, length: MiB, pattern: 'random', seed: 4 }]);
    const sum = await lab.diskSha256('both', 0);
    const hostOf = async () => /type="HostSystem"[^>]*>([^<]+)</.exec(await soap.retrieve('VirtualMachine', v.moref, ['runtime.host']))![1]!;
    const from = await hostOf();
    const to = inv.hosts.find((h) => h !== from)!;
    await soap.task(
      `<RelocateVM_Task><_this type="VirtualMachine">${v.moref}</_this><spec><datastore type="Datastore">${inv.datastores['datastore2']}</datastore>` +
        `<pool type="ResourcePool">${inv.resourcePool}</pool><host type="HostSystem">${to}</host></spec></RelocateVM_Task>`,
    );
    expect(await hostOf()).toBe(to);
    expect((await soapDisks(soap, 'VirtualMachine', v.moref))[0]!.fileName).toBe('[datastore2] both/both.vmdk');
    expect(await lab.diskSha256('both', 0)).toBe(sum);
  });

  it('a VM with snapshots moves with its whole chain; snapshots keep their bytes; progress rises while large disks copy', async () => {
    const v = await lab.createVm({ name: 'chain', disks: [{ capacityBytes: 256 * MiB, datastore: 'datastore1' }], cbt: true, powerOn: true });
    await lab.guestWrite('chain', 0, [{ offset: 0, length: 96 * MiB, pattern: 'random', seed: 1 }]);
    const snap = await createSnapshot(soap, v.moref, 's1');
    await lab.guestWrite('chain', 0, [{ offset: 32 * MiB, length: 64 * MiB, pattern: 'random', seed: 2 }]);
    const [cur] = await soapDisks(soap, 'VirtualMachine', v.moref);
    const snapSum = await lab.diskSha256('chain', 0, { snapshot: snap });
    const nowSum = await lab.diskSha256('chain', 0);
    const task = tag(await soap.call(relocateBody(v.moref, inv.datastores['datastore2'])), 'returnval')!;
    const seen: { state: string; progress?: number }[] = [];
    await soap.waitTask(task, { onInfo: (i) => seen.push(i) });
    expect(seen.some((s) => s.state === 'running' && (s.progress ?? 0) > 0 && (s.progress ?? 0) < 100), JSON.stringify(seen.slice(0, 30))).toBe(true);
    const p = seen.map((s) => s.progress ?? 0);
    expect(p).toEqual([...p].sort((a, b) => a - b));
    const [d] = await soapDisks(soap, 'VirtualMachine', v.moref);
    expect(cur!.fileName).toMatch(/^\[datastore1\] chain\/.*-000001\.vmdk$/);
    // Files renamed after the VM (the lab's disk was disk1.vmdk or the like): chain.vmdk <- chain-000001.vmdk.
    expect(d!.fileName).toBe('[datastore2] chain/chain-000001.vmdk');
    expect(d!.parent).toBe('[datastore2] chain/chain.vmdk');
    const [sd] = await soapDisks(soap, 'VirtualMachineSnapshot', snap);
    expect(sd!.fileName).toBe('[datastore2] chain/chain.vmdk');
    expect(await lab.diskSha256('chain', 0, { snapshot: snap })).toBe(snapSum);
    expect(await lab.diskSha256('chain', 0)).toBe(nowSum);
    const ds1 = lab.datastores.find((x) => x.name === 'datastore1')!.path;
    expect(fs.existsSync(path.join(ds1, 'chain'))).toBe(false);
    // The delta descriptor still names its parent, next to it.
    const ds2 = lab.datastores.find((x) => x.name === 'datastore2')!.path;
    const link = path.join(ds2, 'chain', path.basename(d!.fileName));
    expect(fs.readFileSync(link, 'utf8')).toContain(`parentFileNameHint="${path.basename(d!.parent!)}"`);
    // qemu-img follows the moved chain where it is installed.
    if (spawnSync('qemu-img', ['--version']).status === 0) {
      const check = spawnSync('qemu-img', ['info', '--backing-chain', link], { encoding: 'utf8' });
      expect(check.status, check.stderr).toBe(0);
    }
    // The moved chain consolidates where it now is.
    await removeSnapshot(soap, snap);
    const [base] = await soapDisks(soap, 'VirtualMachine', v.moref);
    expect(base!.fileName).toBe('[datastore2] chain/chain.vmdk');
    expect(await lab.diskSha256('chain', 0)).toBe(nowSum);
  }, 120_000);
});
