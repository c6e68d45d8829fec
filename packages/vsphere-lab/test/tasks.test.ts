// Snapshot tasks run in the background, as on vSphere: the Task comes back at once, `running` with
// info.progress rising while the lab works (flushing and copying the disk files; merging a delta), then
// `success` or `error` with the fault. A busy VM refuses other snapshot tasks and reconfiguration.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest, SoapFault, tag, type SoapClient } from '../src/soap.ts';
import { MiB, soapDisks } from './helpers.ts';

const isRoot = process.getuid?.() === 0;

let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab({ hotadd: false, ...(isRoot ? { extraDatastores: [{ name: 'tiny', sizeBytes: 48 * MiB }] } : {}) });
  soap = await lab.soap();
});
afterAll(async () => {
  await lab?.stop();
});

type Seen = { state: string; progress?: number };

/** Calls a *_Task method; returns the task moref as soon as the call answers. */
async function start(body: string): Promise<string> {
  const ref = tag(await soap.call(body), 'returnval');
  if (!ref) throw new Error('no task returned');
  return ref;
}

/** Polls the task as fast as the lab answers until it ends; every poll is recorded. */
async function watch(task: string): Promise<{ seen: Seen[]; result?: string; fault?: SoapFault }> {
  const seen: Seen[] = [];
  try {
    const result = await soap.waitTask(task, { onInfo: (i) => seen.push(i), timeoutMs: 300_000 });
    return { seen, result };
  } catch (e) {
    if (e instanceof SoapFault) return { seen, fault: e };
    throw e;
  }
}

const createBody = (vm: string, name: string) =>
  `<CreateSnapshot_Task><_this type="VirtualMachine">${vm}</_this><name>${name}</name><memory>false</memory><quiesce>false</quiesce></CreateSnapshot_Task>`;
const removeBody = (snap: string) =>
  `<RemoveSnapshot_Task><_this type="VirtualMachineSnapshot">${snap}</_this><removeChildren>false</removeChildren><consolidate>true</consolidate></RemoveSnapshot_Task>`;

/** Writes straight through the lab's guest writer in large requests (a snapshot link's delta is rebuilt per request). */
async function bigWrite(vmName: string, offset: number, length: number, seed: number): Promise<void> {
  const vm = await lab.getVm(vmName);
  const base = new URL(lab.url).origin;
  const step = 128 * MiB;
  for (let done = 0; done < length; done += step) {
    const n = Math.min(step, length - done);
    const data = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4096) data.writeUInt32LE((seed * 2654435761 + i) >>> 0, i); // every page distinct and non-zero
    const qs = new URLSearchParams({ vm: vm.moref, key: String(vm.disks[0]!.key), offset: String(offset + done) });
    const res = await httpRequest(`${base}/lab/guest-write?${qs}`, { method: 'POST', body: data, ca: lab.certPem, headers: { 'Content-Length': String(n) } });
    if (res.status !== 200) throw new Error(`guest write: ${res.body.toString()}`);
  }
}

function expectProgress(seen: Seen[], final: 'success' | 'error') {
  expect(seen[0]!.state, 'the task is not finished when the call answers').toMatch(/^(queued|running)$/);
  expect(seen.at(-1)!.state).toBe(final);
  const running = seen.filter((s) => s.state === 'running' && s.progress !== undefined && s.progress > 0 && s.progress < 100);
  expect(running.length, `running with 0 < progress < 100 at least once: ${JSON.stringify(seen.slice(0, 40))}`).toBeGreaterThan(0);
  const p = seen.map((s) => s.progress ?? 0);
  expect(p, 'progress never goes back').toEqual([...p].sort((a, b) => a - b));
}

describe('snapshot tasks run in the background with progress', () => {
  let snap = '';

  it('CreateSnapshot_Task of a VM with much unflushed data: running with rising progress, TaskInProgress for other operations meanwhile, then success', async () => {
    const vm = await lab.createVm({ name: 'busy', disks: [{ capacityBytes: 640 * MiB }], cbt: true, powerOn: true });
    await bigWrite('busy', 0, 512 * MiB, 3);
    const before = await lab.diskSha256('busy', 0);

    const task = await start(createBody(vm.moref, 'first'));
    // While it runs, vSphere refuses a second snapshot and a reconfiguration of the same VM.
    const second = await start(createBody(vm.moref, 'second'));
    const reconfig = await start(`<ReconfigVM_Task><_this type="VirtualMachine">${vm.moref}</_this><spec><annotation>x</annotation></spec></ReconfigVM_Task>`);
    const { seen, result } = await watch(task);
    expectProgress(seen, 'success');
    expect(result).toMatch(/^snapshot-\d+$/);
    snap = result!;
    for (const t of [second, reconfig]) {
      const { fault } = await watch(t);
      expect(fault?.faultType).toBe('TaskInProgress');
      expect(fault?.xml).toContain(`>${task}</task>`);
    }

    // The snapshot is what the synchronous task made: frozen base disk, the VM on a link.
    const [snapDisk] = await soapDisks(soap, 'VirtualMachineSnapshot', snap);
    const [vmDisk] = await soapDisks(soap, 'VirtualMachine', vm.moref);
    expect(snapDisk!.fileName).toBe('[datastore1] busy/busy.vmdk');
    expect(vmDisk!.fileName).toBe('[datastore1] busy/busy-000001.vmdk');
    expect(await lab.diskSha256('busy', 0, { snapshot: snap })).toBe(before);
    // With the task done, the VM accepts a reconfiguration again.
    await soap.task(`<ReconfigVM_Task><_this type="VirtualMachine">${vm.moref}</_this><spec><annotation>y</annotation></spec></ReconfigVM_Task>`);
  }, 180_000);

  it('RemoveSnapshot_Task with a large delta: running while the delta merges into its parent, then success with the VM back on its base disk', async () => {
    expect(snap).not.toBe('');
    await bigWrite('busy', 128 * MiB, 384 * MiB, 5);
    const now = await lab.diskSha256('busy', 0);

    const { seen } = await watch(await start(removeBody(snap)));
    expectProgress(seen, 'success');
    const vm = await lab.getVm('busy');
    expect(vm.disks[0]!.fileName).toBe('[datastore1] busy/busy.vmdk');
    expect(vm.disks[0]!.parents).toEqual([]);
    expect(await lab.diskSha256('busy', 0)).toBe(now);
    expect(fs.readdirSync(path.join(lab.datastores[0]!.path, 'busy')).filter((f) => /-000001/.test(f))).toEqual([]);
  }, 180_000);

  it.skipIf(!isRoot)('a full datastore while the snapshot copies the disk ends the task in error with NoDiskSpace, and nothing changes', async () => {
    const vm = await lab.createVm({ name: 'cramped', disks: [{ capacityBytes: 32 * MiB, datastore: 'tiny' }], powerOn: true });
    await lab.guestWrite('cramped', 0, [{ offset: 0, length: 30 * MiB, pattern: 'random', seed: 11 }]);
    const before = await lab.diskSha256('cramped', 0);

    const { seen, fault } = await watch(await start(createBody(vm.moref, 'no-room')));
    expect(seen.at(-1)!.state).toBe('error');
    expect(fault?.faultType).toBe('NoDiskSpace');
    expect(fault?.xml).toContain('<datastore>tiny</datastore>');
    expect(fault?.xml).toContain('cramped-000001.vmdk');

    const after = await lab.getVm('cramped');
    expect(after.disks[0]!.fileName).toBe('[tiny] cramped/cramped.vmdk');
    expect(after.disks[0]!.parents).toEqual([]);
    expect(tag(await soap.retrieve('VirtualMachine', vm.moref, ['snapshot']), 'rootSnapshotList')).toBeUndefined();
    const tiny = lab.datastores.find((d) => d.name === 'tiny')!.path;
    expect(fs.readdirSync(path.join(tiny, 'cramped')).filter((f) => /-000001/.test(f))).toEqual([]);
    expect(await lab.diskSha256('cramped', 0)).toBe(before);
    // The VM is not left busy: the next operation runs.
    await soap.task(`<ReconfigVM_Task><_this type="VirtualMachine">${vm.moref}</_this><spec><annotation>z</annotation></spec></ReconfigVM_Task>`);
  }, 120_000);
});
