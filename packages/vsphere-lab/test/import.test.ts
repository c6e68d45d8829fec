// ImportVApp leases: a streamOptimized upload becomes the disk's flat extent as a sparse file (thin stays thin).
// The streamOptimized files are made by qemu-img, independently of Vaultline's own VMDK writer.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patternBytes, startLab, type Lab } from '../src/index.ts';
import { httpRequest, tag, tags, xmlEscape, type SoapClient } from '../src/soap.ts';
import { createSnapshot, MiB, qcdaAll, soapDisks } from './helpers.ts';

let lab: Lab;
let soap: SoapClient;
let work: string;
let inv: { vmFolder: string; resourcePool: string; hosts: string[] };

beforeAll(async () => {
  const qemu = (() => {
    try {
      execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  // Without qemu-img the stream cannot be made independently: fail, saying so (never skip).
  if (!qemu) throw new Error('qemu-img (Debian package qemu-utils) is needed to make the streamOptimized test files');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-import-'));
  lab = await startLab({});
  soap = await lab.soap();
  inv = await labGet('inventory');
});
afterAll(async () => {
  await lab?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A lab-only JSON endpoint (/lab/<endpoint>). */
async function labGet<T>(endpoint: string, query: Record<string, string> = {}): Promise<T> {
  const u = new URL(`/lab/${endpoint}`, lab.url);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  const res = await httpRequest(u.toString(), { ca: lab.certPem });
  if (res.status !== 200) throw new Error(`GET ${u.pathname}: HTTP ${res.status}: ${res.body.toString()}`);
  return JSON.parse(res.body.toString()) as T;
}

/** ImportVApp of a VM with one thin pvscsi disk of `capacity` bytes; the lease's state and disk URL. */
async function importVm(name: string, capacity: number, opts: { cbt?: boolean } = {}): Promise<{ lease: string; url: string; vm: string; xml: string }> {
  const ds = lab.datastores[0]!.name;
  const config =
    `<name>${xmlEscape(name)}</name><guestId>debian10_64Guest</guestId><files><vmPathName>[${xmlEscape(ds)}]</vmPathName></files>` +
    `<numCPUs>1</numCPUs><memoryMB>512</memoryMB>` +
    `<deviceChange><operation>add</operation><device xsi:type="ParaVirtualSCSIController"><key>-100</key><busNumber>0</busNumber><sharedBus>noSharing</sharedBus></device></deviceChange>` +
    `<deviceChange><operation>add</operation><fileOperation>create</fileOperation><device xsi:type="VirtualDisk"><key>-1000</key>` +
    `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[${xmlEscape(ds)}]</fileName><diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing>` +
    `<controllerKey>-100</controllerKey><unitNumber>0</unitNumber><capacityInKB>${capacity / 1024}</capacityInKB><capacityInBytes>${capacity}</capacityInBytes></device></deviceChange>` +
    (opts.cbt ? '<changeTrackingEnabled>true</changeTrackingEnabled>' : '');
  const res = await soap.call(
    `<ImportVApp><_this type="ResourcePool">${inv.resourcePool}</_this>` +
      `<spec xsi:type="VirtualMachineImportSpec"><configSpec>${config}</configSpec></spec>` +
      `<folder type="Folder">${inv.vmFolder}</folder></ImportVApp>`,
  );
  const lease = tag(res, 'returnval')!;
  const xml = await soap.retrieve('HttpNfcLease', lease, ['info', 'state']);
  const devices = tags(xml, 'deviceUrl').filter((d) => tag(d, 'disk') === 'true');
  expect(devices).toHaveLength(1);
  const base = new URL(lab.url);
  const url = tag(devices[0]!, 'url')!.replace(/^https?:\/\/\*(?=\/)/, `${base.protocol}//${base.host}`);
  const vm = (await lab.getVm(name)).moref;
  return { lease, url, vm, xml };
}

function upload(url: string, body: Buffer) {
  return httpRequest(url, { method: 'POST', body, ca: lab.certPem, headers: { 'Content-Type': 'application/x-vnd.vmware-streamVmdk', 'Content-Length': String(body.length) } });
}

const allocated = (file: string) => fs.statSync(file).blocks * 512;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('ImportVApp lease upload', () => {
  it('turns a streamOptimized upload into the disk flat extent as a sparse file: exact bytes, blocks only where the stream had data', async () => {
    const capacity = 64 * MiB;
    // The source image: data in a few places (one area ends mid-grain), an area written with zeros, holes elsewhere.
    const raw = path.join(work, 'src.raw');
    fs.writeFileSync(raw, '');
    fs.truncateSync(raw, capacity);
    const fd = fs.openSync(raw, 'r+');
    const areas: [number, Buffer][] = [
      [0, randomBytes(MiB)],
      [20 * MiB, patternBytes('text', 3 * MiB, 3)],
      [30 * MiB, Buffer.alloc(2 * MiB)], // zeros: allocated in the source file, but no data
      [40 * MiB + 4096, randomBytes(10_000)],
      [capacity - 4096, randomBytes(4096)],
    ];
    for (const [off, b] of areas) fs.writeSync(fd, b, 0, b.length, off);
    fs.closeSync(fd);
    const dataBytes = MiB + 3 * MiB + 10_000 + 4096;
    const stream = path.join(work, 'src-stream.vmdk');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, stream]);
    const body = fs.readFileSync(stream);
    expect(body.subarray(0, 4).toString()).toBe('KDMV');

    const { lease, url, vm, xml } = await importVm('imported-01', capacity, { cbt: true });
    expect(xml).toMatch(/<name>state<\/name><val[^>]*>ready<\/val>/);
    expect(url).toMatch(/\/nfc\//);
    const res = await upload(url, body);
    expect(res.status, res.body.toString()).toBe(200);
    await soap.call(`<HttpNfcLeaseProgress><_this type="HttpNfcLease">${lease}</_this><percent>100</percent></HttpNfcLeaseProgress>`);
    await soap.call(`<HttpNfcLeaseComplete><_this type="HttpNfcLease">${lease}</_this></HttpNfcLeaseComplete>`);

    const disk = (await lab.getVm('imported-01')).disks[0]!;
    expect(disk.capacityBytes).toBe(capacity);
    // Laid out like every lab disk: a VMFS descriptor next to the flat extent.
    const descriptor = fs.readFileSync(disk.flatPath.replace(/-flat\.vmdk$/, '.vmdk'), 'utf8');
    expect(descriptor).toContain('createType="vmfs"');
    expect(descriptor).toContain(`"${path.basename(disk.flatPath)}"`);
    expect(fs.statSync(disk.flatPath).size).toBe(capacity);
    expect(sha(fs.readFileSync(disk.flatPath))).toBe(sha(fs.readFileSync(raw)));
    // Thin: allocated blocks close to the data written (64 KiB grains), nowhere near the capacity; the zero area is a hole.
    const used = allocated(disk.flatPath);
    expect(used).toBeGreaterThanOrEqual(dataBytes);
    expect(used).toBeLessThanOrEqual(dataBytes * 1.05 + 3 * 64 * 1024);
    const extents = await labGet<[number, number][]>('extents', { path: disk.flatPath, length: String(capacity) });
    expect(extents.some(([o, l]) => o < 32 * MiB && o + l > 30 * MiB)).toBe(false);

    // The imported VM works like the others afterwards: snapshots freeze its (imported) bytes, and CBT's "*"
    // (the allocated areas) is exactly the data grains that landed.
    const snap = await createSnapshot(soap, vm, 'after-import');
    expect(await lab.diskSha256('imported-01', 0, { snapshot: snap })).toBe(sha(fs.readFileSync(raw)));
    const cbt = await qcdaAll(soap, vm, snap, disk.key, capacity, '*');
    expect(cbt.areas).toEqual([
      { start: 0, length: MiB },
      { start: 20 * MiB, length: 3 * MiB },
      { start: 40 * MiB, length: 65536 },
      { start: capacity - 65536, length: 65536 },
    ]);
    // The lease is over: its URL is gone (a small body: the stock handler answers without reading it).
    expect((await upload(url, body.subarray(0, 512))).status).toBe(404);
  });

  it('the imported disk hot-adds to the proxy VM like any other: its block device reads the uploaded bytes', async () => {
    // HotAdd emulation is loop devices over the flat files (losetup): it needs root. Fail, saying so.
    if (process.getuid?.() !== 0) throw new Error('HotAdd emulation needs root (losetup); run the lab tests as root');
    const capacity = 16 * MiB;
    const raw = path.join(work, 'hot.raw');
    fs.writeFileSync(raw, '');
    fs.truncateSync(raw, capacity);
    const data = randomBytes(2 * MiB);
    const fd = fs.openSync(raw, 'r+');
    fs.writeSync(fd, data, 0, data.length, 5 * MiB);
    fs.closeSync(fd);
    const stream = path.join(work, 'hot.vmdk');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, stream]);
    const { lease, url } = await importVm('imported-hot', capacity);
    const up = await upload(url, fs.readFileSync(stream));
    expect(up.status, up.body.toString()).toBe(200);
    await soap.call(`<HttpNfcLeaseComplete><_this type="HttpNfcLease">${lease}</_this></HttpNfcLeaseComplete>`);
    const disk = (await lab.getVm('imported-hot')).disks[0]!;
    const ctl = /<VirtualDevice\b[^>]*type="ParaVirtualSCSIController"[^>]*>([\s\S]*?)<\/VirtualDevice>/.exec(await soap.retrieve('VirtualMachine', lab.proxyVm.moref, ['config.hardware.device']));
    const controllerKey = Number(tag(ctl![1]!, 'key'));
    const device = (key: number) =>
      `<device xsi:type="VirtualDisk"><key>${key}</key><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>${xmlEscape(disk.fileName)}</fileName>` +
      `<diskMode>independent_nonpersistent</diskMode></backing><controllerKey>${controllerKey}</controllerKey><unitNumber>3</unitNumber><capacityInKB>0</capacityInKB></device>`;
    await soap.task(`<ReconfigVM_Task><_this type="VirtualMachine">${lab.proxyVm.moref}</_this><spec><deviceChange><operation>add</operation>${device(-1)}</deviceChange></spec></ReconfigVM_Task>`);
    const attached = (await soapDisks(soap, 'VirtualMachine', lab.proxyVm.moref)).find((d) => d.fileName === disk.fileName)!;
    expect(attached.uuid).toBe(disk.uuid);
    const dev = fs.realpathSync(path.join(lab.byIdDir, `wwn-0x${disk.uuid.replace(/-/g, '').toLowerCase()}`));
    const got = Buffer.alloc(2 * MiB);
    const dfd = fs.openSync(dev, 'r');
    fs.readSync(dfd, got, 0, got.length, 5 * MiB);
    fs.closeSync(dfd);
    expect(got.equals(data)).toBe(true);
    await soap.task(`<ReconfigVM_Task><_this type="VirtualMachine">${lab.proxyVm.moref}</_this><spec><deviceChange><operation>remove</operation>${device(attached.key)}</deviceChange></spec></ReconfigVM_Task>`);
  });

  it('keeps the stock behaviour for a raw (non-VMDK) upload, refuses a malformed stream, and ends uploads at HttpNfcLeaseAbort (the VM stays for the client to destroy)', async () => {
    const capacity = 8 * MiB;
    const { lease, url, vm } = await importVm('imported-02', capacity);
    const flat = (await lab.getVm('imported-02')).disks[0]!.flatPath;
    expect((await upload(url, randomBytes(MiB))).status).toBe(200);
    expect(allocated(flat)).toBe(0);
    // A sparse header that is not streamOptimized (no compressed grains / markers), then a truncated stream.
    const bad = Buffer.alloc(512);
    bad.write('KDMV');
    const r1 = await upload(url, bad);
    expect(r1.status).toBe(400);
    expect(r1.body.toString()).toMatch(/not streamOptimized/);
    const raw = path.join(work, 'small.raw');
    fs.writeFileSync(raw, randomBytes(MiB));
    fs.truncateSync(raw, capacity);
    const stream = path.join(work, 'small.vmdk');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, stream]);
    const whole = fs.readFileSync(stream);
    const r2 = await upload(url, whole.subarray(0, whole.length - 1024));
    expect(r2.status).toBe(400);
    expect(r2.body.toString()).toMatch(/end-of-stream|unexpected EOF|EOF/);
    await soap.call(`<HttpNfcLeaseAbort><_this type="HttpNfcLease">${lease}</_this></HttpNfcLeaseAbort>`);
    expect((await upload(url, whole.subarray(0, 512))).status).toBe(404);
    expect((await lab.getVm('imported-02')).moref).toBe(vm);
    await soap.task(`<Destroy_Task><_this type="VirtualMachine">${vm}</_this></Destroy_Task>`);
  });
});
