/**
 * Task waiting against the lab vCenter, whose snapshot tasks run in the
 * background (running, with info.progress rising) as on vSphere: the
 * client's onProgress sees the progress rise before the task succeeds.
 */
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VSphereClient } from '../src/index.ts';

const MiB = 1024 * 1024;

let lab: Lab;
let client: VSphereClient;

beforeAll(async () => {
  lab = await startLab({ hotadd: false });
  client = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
});
afterAll(async () => {
  await client?.close();
  await lab?.stop();
});

const rising = (p: number[]) => expect(p, 'progress only rises').toEqual([...p].sort((a, b) => a - b));

describe('lab: task progress', () => {
  it('creating a snapshot of a VM with much unflushed data reports rising progress, then 100; removing it ends at 100', async () => {
    const vm = await lab.createVm({ name: 'progress-01', disks: [{ capacityBytes: 512 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite('progress-01', 0, [{ offset: 0, length: 448 * MiB, pattern: 'random', seed: 4 }]);

    const created: number[] = [];
    const snap = await client.snapshots.create(vm.moref, { runId: 'progress-1', onProgress: (p) => created.push(p) });
    expect(snap).toMatch(/^snapshot-/);
    rising(created);
    expect(created.at(-1)).toBe(100);
    expect(created.filter((p) => p > 0 && p < 100).length, `progress seen: ${created.join(', ')}`).toBeGreaterThan(0);

    await lab.guestWrite('progress-01', 0, [{ offset: 0, length: 64 * MiB, pattern: 'random', seed: 5 }]);
    const removed: number[] = [];
    await client.snapshots.remove(snap, { onProgress: (p) => removed.push(p) });
    rising(removed);
    expect(removed.at(-1)).toBe(100);
    expect((await client.inventory.vm(vm.moref)).hasSnapshots).toBe(false);
  }, 120_000);
});
