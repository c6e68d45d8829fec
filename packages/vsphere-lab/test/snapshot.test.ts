import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, sha256File, type Lab } from '../src/index.ts';
import { httpRequest, type SoapClient } from '../src/soap.ts';
import { createSnapshot, MiB, removeSnapshot, soapDisks } from './helpers.ts';

let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab();
  soap = await lab.soap();
});
afterAll(async () => {
  await lab?.stop();
});

const vmFiles = (vmName: string) =>
  fs
    .readdirSync(path.join(lab.datastores[0]!.path, vmName))
    .filter((f) => f.endsWith('.vmdk'))
    .sort();

describe('snapshots freeze disk data', () => {
  it('a guest write after a snapshot does not change the snapshot disk; the VM moves to a delta whose parent is the frozen disk', async () => {
    const vm = await lab.createVm({ name: 'freeze', disks: [{ capacityBytes: 64 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite('freeze', 0, [{ offset: 0, length: 2 * MiB, pattern: 'text' }]);
    const before = await lab.diskSha256('freeze', 0);
    const snap = await createSnapshot(soap, vm.moref);

    const [vmDisk] = await soapDisks(soap, 'VirtualMachine', vm.moref);
    const [snapDisk] = await soapDisks(soap, 'VirtualMachineSnapshot', snap);
    expect(snapDisk!.fileName).toBe('[datastore1] freeze/freeze.vmdk');
    expect(vmDisk!.fileName).toBe('[datastore1] freeze/freeze-000001.vmdk');
    expect(vmDisk!.parent).toBe('[datastore1] freeze/freeze.vmdk');
    expect(vmDisk!.uuid).toBe(snapDisk!.uuid);
    expect(fs.readFileSync(path.join(lab.datastores[0]!.path, 'freeze', 'freeze-000001.vmdk'), 'utf8')).toContain(
      'parentFileNameHint="freeze.vmdk"',
    );

    // The running VM's disk holds the same data, then diverges.
    expect(await lab.diskSha256('freeze', 0)).toBe(before);
    await lab.guestWrite('freeze', 0, [{ offset: 1 * MiB, length: 3 * MiB, pattern: 'random', seed: 9 }]);
    expect(await lab.diskSha256('freeze', 0, { snapshot: snap })).toBe(before);
    expect(await lab.diskSha256('freeze', 0)).not.toBe(before);
    const snapFile = (await lab.getVm('freeze')).disks[0]!.parents[0]!;
    expect(snapFile).toBe('[datastore1] freeze/freeze.vmdk');
    expect(await sha256File(path.join(lab.datastores[0]!.path, 'freeze', 'freeze-flat.vmdk'), 64 * MiB)).toBe(before);
    await removeSnapshot(soap, snap);
  });

  it('removing the only snapshot consolidates: the VM is back on its base disk with the newest data and the delta files are gone', async () => {
    const vm = await lab.createVm({ name: 'consol', disks: [{ capacityBytes: 32 * MiB }, { capacityBytes: 16 * MiB }], cbt: true });
    await lab.guestWrite('consol', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text' }]);
    const snap = await createSnapshot(soap, vm.moref);
    await lab.guestWrite('consol', 0, [{ offset: 4 * MiB, length: 1 * MiB, pattern: 'random', seed: 2 }]);
    await lab.guestWrite('consol', 1, [{ offset: 0, length: 4096, pattern: 'random', seed: 3 }]);
    const newest = [await lab.diskSha256('consol', 0), await lab.diskSha256('consol', 1)];
    expect(vmFiles('consol')).toContain('consol-000001.vmdk');

    await removeSnapshot(soap, snap);
    const after = await lab.getVm('consol');
    expect(after.disks.map((d) => d.fileName)).toEqual(['[datastore1] consol/consol.vmdk', '[datastore1] consol/consol_1.vmdk']);
    expect(after.disks.map((d) => d.parents)).toEqual([[], []]);
    expect([await lab.diskSha256('consol', 0), await lab.diskSha256('consol', 1)]).toEqual(newest);
    expect(vmFiles('consol')).toEqual(['consol-flat.vmdk', 'consol.vmdk', 'consol_1-flat.vmdk', 'consol_1.vmdk']);
  });

  it('with two snapshots, removing the older keeps the newer one frozen; removing the newer then leaves only the base disk', async () => {
    const vm = await lab.createVm({ name: 'chain', disks: [{ capacityBytes: 16 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite('chain', 0, [{ offset: 0, length: 4096, pattern: 'text', seed: 1 }]);
    const s1 = await createSnapshot(soap, vm.moref, 's1');
    await lab.guestWrite('chain', 0, [{ offset: 8192, length: 4096, pattern: 'text', seed: 2 }]);
    const atS2 = await lab.diskSha256('chain', 0);
    const s2 = await createSnapshot(soap, vm.moref, 's2');
    await lab.guestWrite('chain', 0, [{ offset: 1 * MiB, length: 4096, pattern: 'random', seed: 3 }]);
    const current = await lab.diskSha256('chain', 0);
    // Each link is an ESXi seSparse delta (datastore1 is VMFS6-like), beside the lab's private complete image of it.
    expect(vmFiles('chain')).toEqual([
      'chain-000001-flat.vmdk', 'chain-000001-sesparse.vmdk', 'chain-000001.vmdk', 'chain-000002-flat.vmdk', 'chain-000002-sesparse.vmdk', 'chain-000002.vmdk', 'chain-flat.vmdk', 'chain.vmdk',
    ]);

    await removeSnapshot(soap, s1);
    expect(await lab.diskSha256('chain', 0, { snapshot: s2 })).toBe(atS2);
    expect(await lab.diskSha256('chain', 0)).toBe(current);
    expect((await soapDisks(soap, 'VirtualMachineSnapshot', s2))[0]!.fileName).toBe('[datastore1] chain/chain.vmdk');
    expect((await soapDisks(soap, 'VirtualMachine', vm.moref))[0]!.parent).toBe('[datastore1] chain/chain.vmdk');

    await removeSnapshot(soap, s2);
    expect((await lab.getVm('chain')).disks[0]!.fileName).toBe('[datastore1] chain/chain.vmdk');
    expect(await lab.diskSha256('chain', 0)).toBe(current);
    expect(vmFiles('chain')).toEqual(['chain-flat.vmdk', 'chain.vmdk']);
  });

  it('RemoveAllSnapshots consolidates the whole chain into the base disk with the newest data', async () => {
    const vm = await lab.createVm({ name: 'remove-all', disks: [{ capacityBytes: 16 * MiB }], cbt: true });
    await createSnapshot(soap, vm.moref, 'a');
    await lab.guestWrite('remove-all', 0, [{ offset: 0, length: 4096, pattern: 'random', seed: 1 }]);
    await createSnapshot(soap, vm.moref, 'b');
    await lab.guestWrite('remove-all', 0, [{ offset: 8192, length: 4096, pattern: 'random', seed: 2 }]);
    const newest = await lab.diskSha256('remove-all', 0);
    await soap.task(`<RemoveAllSnapshots_Task><_this type="VirtualMachine">${vm.moref}</_this></RemoveAllSnapshots_Task>`);
    const after = await lab.getVm('remove-all');
    expect(after.disks[0]!.fileName).toBe('[datastore1] remove-all/remove-all.vmdk');
    expect(after.disks[0]!.parents).toEqual([]);
    expect(await lab.diskSha256('remove-all', 0)).toBe(newest);
    expect(vmFiles('remove-all')).toEqual(['remove-all-flat.vmdk', 'remove-all.vmdk']);
  });

  it('diskSha256 (holes hashed without reading) equals a plain full read of the disk file', async () => {
    await lab.createVm({ name: 'sha-sparse', disks: [{ capacityBytes: 256 * MiB }] });
    await lab.guestWrite('sha-sparse', 0, [
      { offset: 0, length: 5000, pattern: 'text' },
      { offset: 100 * MiB + 3, length: 3 * MiB, pattern: 'random', seed: 4 },
      { offset: 256 * MiB - 4096, length: 4096, pattern: 'random', seed: 5 },
    ]);
    const disk = (await lab.getVm('sha-sparse')).disks[0]!;
    expect(await lab.diskSha256('sha-sparse', 0)).toBe(await sha256File(disk.flatPath, disk.capacityBytes));
  });

  it('CBT keeps working across snapshot removal (the change log belongs to the disk chain)', async () => {
    const vm = await lab.createVm({ name: 'ctk-chain', disks: [{ capacityBytes: 16 * MiB }], cbt: true });
    const s1 = await createSnapshot(soap, vm.moref);
    const id1 = (await soapDisks(soap, 'VirtualMachineSnapshot', s1))[0]!.changeId;
    await removeSnapshot(soap, s1);
    await lab.guestWrite('ctk-chain', 0, [{ offset: 2 * MiB, length: 10, pattern: 'text' }]);
    const s2 = await createSnapshot(soap, vm.moref);
    const xml = await soap.call(
      `<QueryChangedDiskAreas><_this type="VirtualMachine">${vm.moref}</_this><snapshot type="VirtualMachineSnapshot">${s2}</snapshot>` +
        `<deviceKey>${vm.disks[0]!.key}</deviceKey><startOffset>0</startOffset><changeId>${id1}</changeId></QueryChangedDiskAreas>`,
    );
    expect(xml).toContain(`<changedArea><start>${2 * MiB}</start><length>65536</length></changedArea>`);
    expect(fs.existsSync(path.join(lab.datastores[0]!.path, 'ctk-chain', 'ctk-chain-ctk.log'))).toBe(true);
  });
});

/** The disk a descriptor describes, read by an independent reader: qemu-img follows the chain down to the base. */
function qemuSha256(descriptor: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-qemu-chain-'));
  try {
    execFileSync('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', descriptor, path.join(dir, 'disk.raw')]);
    return createHash('sha256').update(fs.readFileSync(path.join(dir, 'disk.raw'))).digest('hex');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('snapshot links are deltas in ESXi\'s formats', () => {
  for (const [datastore, format, dataFile] of [
    ['datastore1', 'seSparse', '-sesparse.vmdk'],
    ['datastore2', 'vmfsSparse', '-delta.vmdk'],
  ] as const) {
    it(`${datastore}: a ${format} link per snapshot holds only what was written to it; qemu-img reads each snapshot's chain as the lab's ground truth; /folder has no flat file for a link; consolidation removes the deltas`, async () => {
      const name = `links-${format}`;
      const vm = await lab.createVm({ name, disks: [{ capacityBytes: 24 * MiB + 512 * 3, datastore }], cbt: true, powerOn: true });
      await lab.guestWrite(name, 0, [{ offset: 0, length: 3 * MiB, pattern: 'random', seed: 1 }]);
      const s1 = await createSnapshot(soap, vm.moref, 'user-1');
      // Unaligned writes: the link copies the rest of each grain from its parent, as ESXi does.
      await lab.guestWrite(name, 0, [{ offset: 1 * MiB + 100, length: 70_000, pattern: 'text', seed: 2 }, { offset: 20 * MiB, length: 5000, pattern: 'random', seed: 3 }]);
      const s2 = await createSnapshot(soap, vm.moref, 'user-2');
      await lab.guestWrite(name, 0, [{ offset: 24 * MiB + 512, length: 1024, pattern: 'random', seed: 4 }, { offset: 2 * MiB, length: 4096, pattern: 'zeros' }]);
      const truth = { s1: await lab.diskSha256(name, 0, { snapshot: s1 }), s2: await lab.diskSha256(name, 0, { snapshot: s2 }), now: await lab.diskSha256(name, 0) };

      const dir = path.join(lab.datastores.find((d) => d.name === datastore)!.path, name);
      const d1 = fs.readFileSync(path.join(dir, `${name}-000001.vmdk`), 'utf8');
      const d2 = fs.readFileSync(path.join(dir, `${name}-000002.vmdk`), 'utf8');
      const cid = (d: string, key: string) => new RegExp(`^${key}=([0-9a-f]{8})$`, 'm').exec(d)?.[1];
      expect(d1).toContain(`createType="${format}"`);
      expect(d1).toContain(`parentFileNameHint="${name}.vmdk"`);
      expect(d1).toMatch(new RegExp(`^RW ${(24 * MiB + 1536) / 512} ${format === 'seSparse' ? 'SESPARSE' : 'VMFSSPARSE'} "${name}-000001${dataFile}"$`, 'm'));
      expect(cid(d1, 'parentCID')).toBe('fffffffe');
      expect(cid(d2, 'parentCID')).toBe(cid(d1, 'CID'));
      expect(d2).toContain(`parentFileNameHint="${name}-000001.vmdk"`);
      // Each delta holds the grains written to it and no more (metadata aside): 70 000 + 5 000 bytes, not the disk.
      const size = fs.statSync(path.join(dir, `${name}-000001${dataFile}`)).size;
      const blocks = fs.statSync(path.join(dir, `${name}-000001${dataFile}`)).blocks * 512;
      expect(Math.min(size, blocks)).toBeLessThan(1 * MiB);

      // The snapshots' chains and the VM's current one, read by qemu-img from the descriptors, are the lab's truth.
      expect(qemuSha256(path.join(dir, `${name}.vmdk`))).toBe(truth.s1);
      expect(qemuSha256(path.join(dir, `${name}-000001.vmdk`))).toBe(truth.s2);
      expect(qemuSha256(path.join(dir, `${name}-000002.vmdk`))).toBe(truth.now);

      // Through /folder a link is its descriptor and its delta; the lab's complete image of it is not there.
      const folder = (file: string) => {
        const u = new URL(`${new URL(lab.url).origin}/folder/${name}/${file}`);
        u.searchParams.set('dcPath', lab.datacenter);
        u.searchParams.set('dsName', datastore);
        return u.toString();
      };
      expect((await httpRequest(folder(`${name}-000001.vmdk`), { ca: lab.certPem })).body.toString()).toBe(d1);
      expect((await httpRequest(folder(`${name}-000001${dataFile}`), { ca: lab.certPem })).status).toBe(200);
      expect((await httpRequest(folder(`${name}-000001-flat.vmdk`), { ca: lab.certPem })).status).toBe(404);
      expect((await httpRequest(folder(`${name}-000002-flat.vmdk`), { ca: lab.certPem, method: 'PUT', body: Buffer.alloc(512) })).status).toBe(403);
      expect((await httpRequest(folder(`${name}-flat.vmdk`), { ca: lab.certPem, method: 'HEAD' })).status).toBe(200);

      await removeSnapshot(soap, s2);
      // Consolidated into link 1, which now holds what links 1 and 2 held.
      expect(qemuSha256(path.join(dir, `${name}-000001.vmdk`))).toBe(truth.now);
      expect(fs.existsSync(path.join(dir, `${name}-000002${dataFile}`))).toBe(false);
      await removeSnapshot(soap, s1);
      expect(fs.readdirSync(dir).filter((f) => f.includes('-00000')).sort()).toEqual([]);
      expect(await lab.diskSha256(name, 0)).toBe(truth.now);
    });
  }
});
