// NFS datastores the lab mounts itself, as ESXi does: no lab export mapping, the lab's NFSv3 client (portmap 111,
// MOUNT, NFS 2049) talks to a real user-space NFS server (@vaultline/nfs) and the export is FUSE-mounted as the
// datastore's folder, so every file operation of the lab (RegisterVM's .vmx, snapshot deltas, disk reads,
// Storage vMotion's copies) goes over NFS. Each server has a loopback address of its own (127.0.0.2x), so all listen
// on the standard ports. Root only: ports 111/2049 and the FUSE mount need it.
// The NFS server runs in this process: nothing here touches the mount with synchronous fs calls (they would block
// the event loop that serves the lab's NFS calls behind them).
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NfsServer } from '@vaultline/nfs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest, tag, tags, type SoapClient } from '../src/soap.ts';
import { createSnapshot, fault, MiB, soapDisks } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
const SERVER = '127.0.0.21'; // the NFS server
const NOBODY = '127.0.0.22'; // nothing listens there
const SECOND = '127.0.0.23'; // another NFS server, on the same standard ports
const EXPORT = '/vaultline/rp-nfs';
const DENIED = '/vaultline/not-for-you';
const READ_ONLY = '/vaultline/rp-ro';
const DISK = 16 * MiB;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The NFS (FUSE) mounts of exports of `server` in the mount table. */
function nfsMounts(server = SERVER): string[] {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[0]?.startsWith(`${server}:`) && f[2]?.startsWith('fuse'))
    .map((f) => f[1]!);
}

// Skipped only outside CI for a developer who is not root; in CI (CI=true) it runs, and fails without root.
describe.skipIf(!isRoot && process.env.CI !== 'true')('NFS datastores mounted over real NFSv3 (FUSE)', () => {
  let lab: Lab;
  let soap: SoapClient;
  let work: string;
  let overlay: string;
  let server: NfsServer;
  let second: NfsServer;
  let dss: string;
  let nas = '';
  let vm = '';
  let inv: { vmFolder: string; resourcePool: string; hosts: string[]; datastores: Record<string, string> };
  // The restore point's disk: data at the start, in the middle and at the end, holes between.
  const base = Buffer.alloc(DISK);
  randomBytes(MiB).copy(base, 0);
  randomBytes(2 * MiB).copy(base, 6 * MiB);
  randomBytes(4096).copy(base, DISK - 4096);

  const nasSpec = (remoteHost: string, remotePath: string, localPath: string, system = dss) =>
    `<CreateNasDatastore><_this type="HostDatastoreSystem">${system}</_this><spec><remoteHost>${remoteHost}</remoteHost>` +
    `<remotePath>${remotePath}</remotePath><localPath>${localPath}</localPath><accessMode>readWrite</accessMode><type>NFS</type></spec></CreateNasDatastore>`;
  const createNas = async (remoteHost: string, remotePath: string, localPath: string) => tag(await soap.call(nasSpec(remoteHost, remotePath, localPath)), 'returnval')!;
  const removeDs = (ds: string) =>
    soap.call(`<RemoveDatastore><_this type="HostDatastoreSystem">${dss}</_this><datastore type="Datastore">${ds}</datastore></RemoveDatastore>`);
  const folderGet = (dsName: string, file: string, range?: string) =>
    httpRequest(`${new URL(lab.url).origin}/folder/${file}?dcPath=${encodeURIComponent(lab.datacenter)}&dsName=${encodeURIComponent(dsName)}`, {
      ca: lab.certPem,
      headers: range ? { Range: range } : {},
    });

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-nas-nfs-test-'));
    overlay = path.join(work, 'overlay');
    // The restore point as the appliance exports it: descriptor and .vmx in the writable folder, the flat extent a base file.
    const home = path.join(overlay, 'nfs-vm');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(
      path.join(home, 'nfs-vm.vmdk'),
      `# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\n` +
        `# Extent description\nRW ${DISK / 512} VMFS "nfs-vm-flat.vmdk"\n\n# The Disk Data Base\n#DDB\n\n` +
        `ddb.adapterType = "lsilogic"\nddb.thinProvisioned = "1"\nddb.uuid = "60 00 c2 9a 1b 2c 3d 4e-5f 60 71 82 93 a4 b5 c6"\nddb.virtualHWVersion = "13"\n`,
    );
    fs.writeFileSync(
      path.join(home, 'nfs-vm.vmx'),
      [
        '.encoding = "UTF-8"',
        'config.version = "8"',
        'virtualHW.version = "13"',
        'displayName = "nfs-vm"',
        'guestOS = "debian10-64"',
        'memSize = "1024"',
        'numvcpus = "1"',
        'scsi0.present = "TRUE"',
        'scsi0.virtualDev = "pvscsi"',
        'scsi0:0.present = "TRUE"',
        'scsi0:0.deviceType = "scsi-hardDisk"',
        'scsi0:0.fileName = "nfs-vm.vmdk"',
      ].join('\n') + '\n',
    );
    server = new NfsServer({ host: SERVER, port: 2049, portmapPort: 111, exports: [] });
    await server.listen();
    await server.addExport({
      name: EXPORT,
      writableDir: overlay,
      baseFiles: [{ path: 'nfs-vm/nfs-vm-flat.vmdk', size: DISK, read: async (offset, length) => Buffer.from(base.subarray(offset, offset + length)) }],
      allowedClients: ['127.0.0.1'],
    });
    fs.mkdirSync(path.join(work, 'other'));
    await server.addExport({ name: DENIED, writableDir: path.join(work, 'other'), allowedClients: ['127.0.0.99'] });
    fs.mkdirSync(path.join(work, 'ro', 'ro-vm'), { recursive: true });
    fs.writeFileSync(path.join(work, 'ro', 'ro-vm', 'notes.txt'), 'read me\n');
    await server.addExport({ name: READ_ONLY, writableDir: path.join(work, 'ro'), allowedClients: ['127.0.0.1'] });

    fs.mkdirSync(path.join(work, 'second'));
    second = new NfsServer({ host: SECOND, port: 2049, portmapPort: 111, exports: [{ name: '/second', writableDir: path.join(work, 'second'), allowedClients: ['127.0.0.1'] }] });
    await second.listen();

    lab = await startLab({ hotadd: true });
    soap = await lab.soap();
    const res = await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem });
    inv = JSON.parse(res.body.toString('utf8')) as typeof inv;
    const xml = await soap.retrieve('HostSystem', inv.hosts[0]!, ['configManager.datastoreSystem']);
    dss = /type="HostDatastoreSystem"[^>]*>([^<]+)</.exec(xml)![1]!;
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
    await server?.close();
    await second?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('an unreachable server, a refused client and a missing export fail like ESXi: PlatformConfigFault, nothing mounted', async () => {
    const noServer = await fault(createNas(NOBODY, '/exports/x', 'nfs-none'));
    expect(noServer.faultType).toBe('PlatformConfigFault');
    expect(tag(noServer.xml, 'faultstring')).toBe(`NFS mount ${NOBODY}:/exports/x failed: Unable to connect to NFS server.`);
    const denied = await fault(createNas(SERVER, DENIED, 'nfs-denied'));
    expect(denied.faultType).toBe('PlatformConfigFault');
    expect(tag(denied.xml, 'faultstring')).toBe(
      `NFS mount ${SERVER}:${DENIED} failed: The mount request was denied by the NFS server. Check that the export exists and that the client is permitted to mount it.`,
    );
    const missing = await fault(createNas(SERVER, '/vaultline/no-such-export', 'nfs-missing'));
    expect(missing.faultType).toBe('PlatformConfigFault');
    expect(missing.message).toContain('denied by the NFS server');
    expect(nfsMounts()).toEqual([]);
    expect(tags(await soap.retrieve('HostSystem', inv.hosts[0]!, ['datastore']), 'ManagedObjectReference')).toHaveLength(Object.keys(inv.datastores).length);
  });

  it('CreateNasDatastore mounts the export over NFS: an NFS datastore with the server\'s capacity, a FUSE mount in the lab folder', async () => {
    nas = await createNas(SERVER, EXPORT, 'nfs-rp');
    const summary = await soap.retrieve('Datastore', nas, ['summary']);
    expect(tag(summary, 'type')).toBe('NFS');
    expect(tag(summary, 'accessible')).toBe('true');
    const st = fs.statfsSync(overlay); // FSSTAT answers the overlay's file system
    expect(Number(tag(summary, 'capacity'))).toBe(Math.floor((st.blocks * st.bsize) / 4096) * 4096);
    const mounts = nfsMounts();
    expect(mounts).toHaveLength(1);
    const runDir = path.dirname(path.dirname(lab.datastores[0]!.path));
    expect(mounts[0]!.startsWith(runDir + '/')).toBe(true);
    const info = await soap.retrieve('Datastore', nas, ['info']);
    expect(tag(info, 'remoteHost')).toBe(SERVER);
    expect(tag(info, 'remotePath')).toBe(EXPORT);
  });

  it('a second server on its own address (same ports 111/2049) mounts beside the first; a PUT lands in its folder', async () => {
    const ds = await createNas(SECOND, '/second', 'nfs-second');
    expect(nfsMounts(SECOND)).toHaveLength(1);
    expect(nfsMounts(SERVER)).toHaveLength(1);
    const put = await httpRequest(`${new URL(lab.url).origin}/folder/hello.txt?dcPath=${encodeURIComponent(lab.datacenter)}&dsName=nfs-second`, {
      method: 'PUT',
      body: 'over NFS',
      ca: lab.certPem,
    });
    expect(put.status).toBeLessThan(300);
    expect(fs.readFileSync(path.join(work, 'second', 'hello.txt'), 'utf8')).toBe('over NFS');
    await removeDs(ds);
    expect(nfsMounts(SECOND)).toEqual([]);
  });

  it('RegisterVM_Task reads the .vmx over NFS; /folder and the lab read path give the base file\'s bytes', async () => {
    vm = await soap.task(
      `<RegisterVM_Task><_this type="Folder">${inv.vmFolder}</_this><path>[nfs-rp] nfs-vm/nfs-vm.vmx</path><asTemplate>false</asTemplate>` +
        `<pool type="ResourcePool">${inv.resourcePool}</pool></RegisterVM_Task>`,
    );
    const disks = await soapDisks(soap, 'VirtualMachine', vm);
    expect(disks.map((d) => d.fileName)).toEqual(['[nfs-rp] nfs-vm/nfs-vm.vmdk']);
    const labVm = await lab.getVm('nfs-vm');
    expect(labVm.disks[0]!.capacityBytes).toBe(DISK);
    expect(labVm.disks[0]!.flatPath.startsWith(nfsMounts()[0]! + '/')).toBe(true);
    const whole = await folderGet('nfs-rp', 'nfs-vm/nfs-vm-flat.vmdk');
    expect(whole.status).toBe(200);
    expect(sha(whole.body)).toBe(sha(base));
    const range = await folderGet('nfs-rp', 'nfs-vm/nfs-vm-flat.vmdk', `bytes=${6 * MiB}-${7 * MiB - 1}`);
    expect(range.status).toBe(206);
    expect(range.body.equals(base.subarray(6 * MiB, 7 * MiB))).toBe(true);
    expect(await lab.diskSha256('nfs-vm', 0)).toBe(sha(base));
    expect(server.counters(EXPORT).bytesReadFromBase).toBeGreaterThan(0);
  });

  it('HotAdd of the NFS disk to the proxy: its device reads the base bytes over NFS (read-only: the server grants no write)', async () => {
    const ctlXml = await soap.retrieve('VirtualMachine', lab.proxyVm.moref, ['config.hardware.device']);
    const ctl = Number(tag(/<VirtualDevice\b[^>]*type="ParaVirtualSCSIController"[^>]*>([\s\S]*?)<\/VirtualDevice>/.exec(ctlXml)![1]!, 'key'));
    const file = '[nfs-rp] nfs-vm/nfs-vm.vmdk';
    const change = (key: number, op: string) =>
      `<ReconfigVM_Task><_this type="VirtualMachine">${lab.proxyVm.moref}</_this><spec><deviceChange><operation>${op}</operation>` +
      `<device xsi:type="VirtualDisk"><key>${key}</key><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>${file}</fileName>` +
      `<diskMode>persistent</diskMode></backing><controllerKey>${ctl}</controllerKey><unitNumber>3</unitNumber><capacityInKB>0</capacityInKB></device>` +
      `</deviceChange></spec></ReconfigVM_Task>`;
    await soap.task(change(-1, 'add'));
    const att = (await soapDisks(soap, 'VirtualMachine', lab.proxyVm.moref)).find((d) => d.fileName === file)!;
    try {
      const dev = await fs.promises.readlink(path.join(lab.byIdDir, `wwn-0x${att.uuid.replace(/-/g, '').toLowerCase()}`));
      const fd = await fs.promises.open(dev, 'r');
      try {
        const got = Buffer.alloc(2 * MiB);
        await fd.read(got, 0, got.length, 6 * MiB);
        expect(got.equals(base.subarray(6 * MiB, 8 * MiB))).toBe(true);
      } finally {
        await fd.close();
      }
      expect((await fs.promises.readFile(`/sys/block/${path.basename(dev)}/ro`, 'utf8')).trim()).toBe('1');
    } finally {
      await soap.task(change(att.key, 'remove'));
    }
  });

  it('power on and a snapshot: the delta files are written to the server\'s writable folder; guest writes go to the delta', async () => {
    await soap.task(`<PowerOnVM_Task><_this type="VirtualMachine">${vm}</_this></PowerOnVM_Task>`);
    const snap = await createSnapshot(soap, vm, 'before-recovery');
    const home = path.join(overlay, 'nfs-vm');
    const files = fs.readdirSync(home);
    expect(files).toEqual(expect.arrayContaining(['nfs-vm-000001.vmdk']));
    expect(files.some((f) => /^nfs-vm-000001-(sesparse|delta)\.vmdk$/.test(f))).toBe(true);
    expect(fs.readFileSync(path.join(home, 'nfs-vm-000001.vmdk'), 'utf8')).toContain('parentFileNameHint="nfs-vm.vmdk"');
    const disks = await soapDisks(soap, 'VirtualMachine', vm);
    expect(disks[0]!.fileName).toBe('[nfs-rp] nfs-vm/nfs-vm-000001.vmdk');

    await lab.guestWrite('nfs-vm', 0, [{ offset: 2 * MiB, length: 64 * 1024, pattern: 'random', seed: 3 }]);
    expect(server.counters(EXPORT).bytesWrittenToOverlay).toBeGreaterThan(64 * 1024);
    // The snapshot's disk is still the base, bit for bit; the running disk has the write.
    expect(await lab.diskSha256('nfs-vm', 0, { snapshot: snap })).toBe(sha(base));
    expect(await lab.diskSha256('nfs-vm', 0)).not.toBe(sha(base));
  });

  it('RelocateVM_Task to the local datastore copies the chain over NFS, bit for bit', async () => {
    const before = await lab.diskSha256('nfs-vm', 0);
    await soap.task(
      `<RelocateVM_Task><_this type="VirtualMachine">${vm}</_this><spec><datastore type="Datastore">${inv.datastores['datastore1']}</datastore></spec></RelocateVM_Task>`,
    );
    const disks = await soapDisks(soap, 'VirtualMachine', vm);
    expect(disks[0]!.fileName).toBe('[datastore1] nfs-vm/nfs-vm-000001.vmdk');
    const ds1 = path.join(lab.datastores.find((d) => d.name === 'datastore1')!.path, 'nfs-vm');
    expect(fs.readdirSync(ds1)).toEqual(expect.arrayContaining(['nfs-vm.vmx', 'nfs-vm.vmdk', 'nfs-vm-flat.vmdk', 'nfs-vm-000001.vmdk']));
    expect(sha(fs.readFileSync(path.join(ds1, 'nfs-vm-flat.vmdk')))).toBe(sha(base));
    expect(await lab.diskSha256('nfs-vm', 0)).toBe(before);
    const xml = await soap.retrieve('VirtualMachine', vm, ['datastore']);
    expect(xml).not.toContain(`>${nas}<`);
  });

  it('a readOnly mount of an export: reads work, writes through the lab fail and reach nothing on the server', async () => {
    const xml = await soap.retrieve('HostSystem', inv.hosts[1]!, ['configManager.datastoreSystem']);
    const dss1 = /type="HostDatastoreSystem"[^>]*>([^<]+)</.exec(xml)![1]!;
    const ro = tag(
      await soap.call(
        `<CreateNasDatastore><_this type="HostDatastoreSystem">${dss1}</_this><spec><remoteHost>${SERVER}</remoteHost><remotePath>${READ_ONLY}</remotePath>` +
          `<localPath>nfs-ro</localPath><accessMode>readOnly</accessMode><type>NFS</type></spec></CreateNasDatastore>`,
      ),
      'returnval',
    )!;
    expect(tag(await soap.retrieve('Datastore', ro, ['host']), 'accessMode')).toBe('readOnly');
    const line = fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.startsWith(`${SERVER}:${READ_ONLY} `))!;
    expect(line.split(' ')[3]!.split(',')).toContain('ro');
    expect((await folderGet('nfs-ro', 'ro-vm/notes.txt')).body.toString()).toBe('read me\n');
    const put = await httpRequest(`${new URL(lab.url).origin}/folder/ro-vm/new.txt?dcPath=${encodeURIComponent(lab.datacenter)}&dsName=nfs-ro`, {
      method: 'PUT',
      body: 'x',
      ca: lab.certPem,
    });
    expect(put.status).toBeGreaterThanOrEqual(400);
    expect(fs.existsSync(path.join(work, 'ro', 'ro-vm', 'new.txt'))).toBe(false);
    await soap.call(`<RemoveDatastore><_this type="HostDatastoreSystem">${dss1}</_this><datastore type="Datastore">${ro}</datastore></RemoveDatastore>`);
  });

  it('RemoveDatastore unmounts the export (mount table clean); the server\'s files stay', async () => {
    await removeDs(nas);
    expect(nfsMounts()).toEqual([]);
    expect(Object.keys(JSON.parse((await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem })).body.toString('utf8')).datastores)).not.toContain('nfs-rp');
    expect(fs.existsSync(path.join(overlay, 'nfs-vm'))).toBe(true);
  });

  it('stopping the lab unmounts what is still mounted', async () => {
    await createNas(SERVER, EXPORT, 'nfs-again');
    expect(nfsMounts()).toHaveLength(1);
    // The server unmounts on SIGTERM itself (lab.stop() would also clean up after it).
    process.kill(lab.pid, 'SIGTERM');
    for (let i = 0; i < 100 && fs.existsSync(`/proc/${lab.pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    expect(nfsMounts()).toEqual([]);
    await lab.stop();
  });

  it('a lab killed with -9 leaves a dead mount that the next start of that lab clears', async () => {
    const dir = path.join(work, 'lab-kept');
    const first = await startLab({ dir, hotadd: false });
    try {
      const s = await first.soap();
      const inv1 = JSON.parse((await httpRequest(`${new URL(first.url).origin}/lab/inventory`, { ca: first.certPem })).body.toString('utf8')) as typeof inv;
      const xml = await s.retrieve('HostSystem', inv1.hosts[0]!, ['configManager.datastoreSystem']);
      const dss1 = /type="HostDatastoreSystem"[^>]*>([^<]+)</.exec(xml)![1]!;
      await s.call(nasSpec(SERVER, EXPORT, 'nfs-killed', dss1));
      expect(nfsMounts()).toHaveLength(1);
      process.kill(first.pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 500));
      expect(nfsMounts()).toHaveLength(1); // the kernel keeps it, dead (ENOTCONN)
      const second = await startLab({ dir, hotadd: false });
      expect(nfsMounts()).toEqual([]);
      await second.stop();
    } finally {
      await first.stop();
    }
    expect(nfsMounts()).toEqual([]);
  }, 60_000);
});
