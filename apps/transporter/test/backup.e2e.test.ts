import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transportLabel } from '@vaultline/contracts';
import { isRoot, runOutcome as outcome, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

/** Moves the lab's LUN links out of the by-id folder (and back). */
async function hideLuns(b: Bench) {
  const { readdir, rename, mkdtemp, rmdir } = await import('node:fs/promises');
  const path = await import('node:path');
  const os = await import('node:os');
  const aside = await mkdtemp(path.join(os.tmpdir(), 'vaultline-hidden-luns-'));
  const moved: string[] = [];
  for (const name of await readdir(b.lab.byIdDir)) {
    if (b.lab.datastores.some((d) => d.naa && name.toLowerCase().includes(d.naa.replace(/^naa\./, '').toLowerCase()))) {
      await rename(path.join(b.lab.byIdDir, name), path.join(aside, name));
      moved.push(name);
    }
  }
  return {
    async restore() {
      for (const name of moved) await rename(path.join(aside, name), path.join(b.lab.byIdDir, name));
      await rmdir(aside);
    },
  };
}

async function nothingLeftBehind(b: Bench, vmName: string) {
  const vm = await b.lab.getVm(vmName);
  const port = await b.connector.portFor(b.vcenterId);
  expect(await port.findTaggedSnapshots(), 'snapshots left').toEqual([]);
  const proxyDisks = (await b.lab.getVm(b.lab.proxyVm.name)).disks.map((d) => d.fileName);
  expect(proxyDisks.filter((f) => !f.includes(b.lab.proxyVm.name)), 'foreign disks on the proxy VM').toEqual([]);
  const open = await b.db.cleanupEntry.findMany({ where: { resolvedAt: null } });
  expect(open, 'unresolved cleanup journal rows').toEqual([]);
  return vm;
}

describe('backup cycle against the lab vCenter (full + incrementals, bit-exact)', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await startBench({ passphrase: 'bench passphrase', cbtMaxAreas: 3 });
    await b.lab.createVm({ name: 'app01', cbt: true, powerOn: true, disks: [{ capacityBytes: 48 * MiB }, { capacityBytes: 24 * MiB, controller: 'lsilogic' }] });
    await b.lab.guestWrite('app01', 0, [
      { offset: 0, length: 4 * MiB, pattern: 'text', seed: 1 },
      { offset: 20 * MiB, length: 3 * MiB, pattern: 'random', seed: 2 },
      { offset: 40 * MiB, length: 1 * MiB, pattern: 'zeros' },
    ]);
    await b.lab.guestWrite('app01', 1, [{ offset: 1 * MiB, length: 5 * MiB, pattern: 'random', seed: 3 }]);
  });
  afterAll(async () => {
    await b?.close();
  });

  it('full backup + 3 incrementals: every restore point reads back equal to the lab ground truth, incrementals read only what changed', async () => {
    const truths: string[][] = [];
    const points: { id: string; vmId: string }[] = [];
    const reads: number[] = [];
    const changed = [0, 2 * MiB + 64 * 1024, 128 * 1024, 5 * MiB];
    for (let round = 0; round < 4; round++) {
      if (round === 1) {
        await b.lab.guestWrite('app01', 0, [{ offset: 10 * MiB, length: 2 * MiB, pattern: 'random', seed: 10 }]);
        await b.lab.guestWrite('app01', 1, [{ offset: 100, length: 10, pattern: 'text', seed: 11 }]);
      } else if (round === 2) {
        await b.lab.guestWrite('app01', 0, [{ offset: 47 * MiB, length: 128 * 1024, pattern: 'random', seed: 12 }]);
      } else if (round === 3) {
        await b.lab.guestWrite('app01', 0, [{ offset: 0, length: 1 * MiB, pattern: 'zeros' }]);
        await b.lab.guestWrite('app01', 1, [{ offset: 18 * MiB, length: 4 * MiB, pattern: 'random', seed: 13 }]);
      }
      truths.push([await b.lab.diskSha256('app01', 0), await b.lab.diskSha256('app01', 1)]);
      const { runId } = await b.newRun(['app01'], 'automatic');
      await b.runAll(runId);
      const { run, vm, point } = await outcome(b, runId);
      expect(run.status, `round ${round}: ${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toMatch(/succeeded|warning/);
      expect(point).not.toBeNull();
      points.push({ id: point!.repoPointId, vmId: point!.vmInstanceUuid });
      reads.push(vm.disks.reduce((n, d) => n + Number(d.bytesRead), 0));
      expect(vm.disks.every((d) => d.cbtUsed)).toBe(true);
      // The first reads every allocated area; the later ones only what CBT says changed.
      expect(vm.disks.map((d) => d.readMode)).toEqual(vm.disks.map(() => (round === 0 ? 'full' : 'changed')));
      await nothingLeftBehind(b, 'app01');
    }
    // Every point is complete on its own: read each back and compare with the truth of its day.
    for (let i = 0; i < points.length; i++) {
      const vm = await b.lab.getVm('app01');
      expect(await b.restoredSha256(points[i]!.id, points[i]!.vmId, String(vm.disks[0]!.key)), `point ${i} disk 0`).toBe(truths[i]![0]);
      expect(await b.restoredSha256(points[i]!.id, points[i]!.vmId, String(vm.disks[1]!.key)), `point ${i} disk 1`).toBe(truths[i]![1]);
    }
    // Incrementals read about what changed (64 KiB CBT granularity), never the whole disk.
    for (let i = 1; i < 4; i++) {
      expect(reads[i]!, `round ${i} read`).toBeGreaterThanOrEqual(changed[i]!);
      expect(reads[i]!, `round ${i} read`).toBeLessThanOrEqual(changed[i]! + 4 * 64 * 1024);
    }
    // The first backup read only allocated areas, not the 72 MiB of capacity.
    expect(reads[0]!).toBeLessThan(20 * MiB);
  });

  it.runIf(isRoot)('automatic mode picks SAN where the LUN is visible and records why', async () => {
    const { runId } = await b.newRun(['app01'], 'automatic');
    await b.runAll(runId);
    const { vm } = await outcome(b, runId);
    for (const d of vm.disks) {
      expect(d.transport).toBe('san');
      expect(d.transportReason as string[]).toEqual([expect.stringMatching(/^SAN: LUN naa\.[0-9a-f]+ visible on this Transporter$/)]);
    }
    // The run log says which part of the LUN was read: the lab's LUNs are unpartitioned ext4 stand-ins for VMFS.
    expect(JSON.stringify(vm.log)).toMatch(/disk [^:"]+: reading LUN naa\.[0-9a-f]+ whole device \(no partition table, ext4\)/);
  });

  it.runIf(isRoot)('each mode forced manually works and gives the same bytes', async () => {
    const truth = await b.lab.diskSha256('app01', 0);
    const vm = await b.lab.getVm('app01');
    for (const mode of ['hotadd', 'nbdssl', 'nbd', 'san'] as const) {
      // A changed byte per round, so each run copies something through that mode.
      const { runId } = await b.newRun(['app01'], mode, { cbtSanityRate: 0 });
      await b.runAll(runId);
      const { run, vm: item, point } = await outcome(b, runId);
      expect(run.status, `${mode}: ${item.error}`).toMatch(/succeeded|warning/);
      expect(item.disks.map((d) => d.transport)).toEqual([mode, mode]);
      expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(vm.disks[0]!.key))).toBe(truth);
      // The network modes say how they read the disk: the flat extent its descriptor names, and which way (the lab's
      // hosts have names that do not resolve, so through vCenter; test/direct-host.e2e.test.ts reads from a host).
      if (mode === 'nbd' || mode === 'nbdssl') {
        expect(JSON.stringify(item.log)).toMatch(new RegExp(`disk Hard disk 1: reading the flat extent app01-flat\\.vmdk through vCenter \\(host name DC0_C0_H\\d does not resolve here\\) over ${transportLabel(mode)}`));
      }
      await nothingLeftBehind(b, 'app01');
    }
  });

  it('an IDE disk on a datastore whose LUN is not visible goes over the network, saying why SAN and HotAdd were skipped', async () => {
    await b.lab.createVm({ name: 'legacy', cbt: true, disks: [{ capacityBytes: 8 * MiB, controller: 'ide' }] });
    await b.lab.guestWrite('legacy', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text', seed: 5 }]);
    // Hide the LUNs from this Transporter, as when it is not zoned to the array.
    const hidden = await hideLuns(b);
    try {
      const { runId } = await b.newRun(['legacy'], 'automatic');
      await b.runAll(runId);
      const { run, vm, point } = await outcome(b, runId);
      expect(run.status, vm.error ?? '').toMatch(/succeeded|warning/);
      expect(vm.disks[0]!.transport).toBe('nbdssl');
      const reasons = vm.disks[0]!.transportReason as string[];
      if (isRoot) expect(reasons[0]).toMatch(/^SAN: LUN naa\.[0-9a-f]+ not visible on this Transporter$/);
      expect(reasons).toContain('HotAdd: disk on IDE controller');
      // Where the time went is kept on the row after the run: busy fractions that add up to the whole.
      const busy = vm.disks[0]!.bottleneck as { source: number; processing: number; target: number };
      expect(busy.source).toBeGreaterThan(0);
      expect(busy.source + busy.processing + busy.target).toBeCloseTo(1, 1);
      const lvm = await b.lab.getVm('legacy');
      expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(lvm.disks[0]!.key))).toBe(await b.lab.diskSha256('legacy', 0));
      if (isRoot) {
        // SCSI disks in the same situation go through HotAdd.
        const scsi = await b.newRun(['app01'], 'automatic');
        await b.runAll(scsi.runId);
        const o = await outcome(b, scsi.runId);
        expect(o.vm.disks.map((d) => d.transport)).toEqual(['hotadd', 'hotadd']);
        expect((o.vm.disks[0]!.transportReason as string[])[0]).toMatch(/^SAN: LUN naa\.[0-9a-f]+ not visible on this Transporter$/);
        await nothingLeftBehind(b, 'app01');
      }
    } finally {
      await hidden.restore();
    }
  });

  it.runIf(isRoot)('an IDE disk still uses SAN when its LUN is visible (the controller does not matter to SAN)', async () => {
    const { runId } = await b.newRun(['legacy'], 'automatic');
    await b.runAll(runId);
    const { run, vm, point } = await outcome(b, runId);
    expect(run.status, vm.error ?? '').toMatch(/succeeded|warning/);
    expect(vm.disks[0]!.transport).toBe('san');
    const lvm = await b.lab.getVm('legacy');
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(lvm.disks[0]!.key))).toBe(await b.lab.diskSha256('legacy', 0));
  });

  it('manual HotAdd of an IDE disk fails clearly before any snapshot', async () => {
    const { runId } = await b.newRun(['legacy'], 'hotadd');
    await b.runAll(runId);
    const { run, vm } = await outcome(b, runId);
    expect(run.status).toBe('failed');
    expect(vm.error).toContain('HotAdd: disk on IDE controller (transport mode is manual: hotadd)');
    await nothingLeftBehind(b, 'legacy');
  });

  it('a VM deleted before its turn ends in a clear per-VM failure', async () => {
    await b.lab.createVm({ name: 'doomed', cbt: true, disks: [{ capacityBytes: 4 * MiB }] });
    const { runId } = await b.newRun(['doomed'], 'automatic');
    // The guest's owner deletes it between the job being queued and its turn (raw Destroy_Task).
    const soap = await b.lab.soap();
    const doomed = await b.lab.getVm('doomed');
    await soap.task(`<Destroy_Task><_this type="VirtualMachine">${doomed.moref}</_this></Destroy_Task>`);
    await b.runAll(runId);
    const { run, vm } = await outcome(b, runId);
    expect(run.status).toBe('failed');
    expect(vm.error).toMatch(/cannot be found in vCenter.*deleted/);
  });

  it('a VM with CBT off is read whole and the run says so', async () => {
    await b.lab.createVm({ name: 'nocbt', cbt: false, disks: [{ capacityBytes: 6 * MiB }] });
    await b.lab.guestWrite('nocbt', 0, [{ offset: 2 * MiB, length: 1 * MiB, pattern: 'random', seed: 8 }]);
    const { runId } = await b.newRun(['nocbt'], 'nbdssl', { enableCbt: false });
    // The log as stored at the moment the item is announced finished.
    const atFinish: { log?: Promise<unknown> } = {};
    b.onEvent = (e) => {
      if (e.type === 'vm.finished') atFinish.log = b.db.runVm.findUniqueOrThrow({ where: { id: e.runVmId as string } }).then((r) => r.log);
    };
    await b.runAll(runId).finally(() => (b.onEvent = null));
    const { run, vm, point } = await outcome(b, runId);
    expect(run.status).toBe('warning');
    expect(JSON.stringify(vm.log)).toContain('Changed Block Tracking is off; reading the whole disk');
    // The item's log, as stored by the time it is finished, is every line the console was sent, in order.
    const sent = b.events.filter((e) => e.type === 'run.log' && e.runVmId === vm.id).map((e) => e.message);
    expect(((await atFinish.log) as { message: string }[]).map((l) => l.message)).toEqual(sent);
    expect((vm.log as { message: string }[]).map((l) => l.message)).toEqual(sent);
    expect(sent.length).toBeGreaterThan(3);
    // The disk's read speed stays on the run: its average and its fastest second (never below the average).
    const disk = await b.db.runDisk.findFirstOrThrow({ where: { runVmId: vm.id } });
    expect(disk.avgBytesPerSecond).toBeGreaterThan(0n);
    expect(disk.peakBytesPerSecond).toBeGreaterThanOrEqual(disk.avgBytesPerSecond);
    const lvm = await b.lab.getVm('nocbt');
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(lvm.disks[0]!.key))).toBe(await b.lab.diskSha256('nocbt', 0));
  });

  it.runIf(isRoot)('manual HotAdd that fails on this Transporter fails over to the network for that disk, keeping the snapshot, and says why', async () => {
    await b.lab.guestWrite('app01', 1, [{ offset: 2 * MiB, length: 1 * MiB, pattern: 'random', seed: 81 }]);
    const truth = await b.lab.diskSha256('app01', 1);
    // The hot-added disks never show up here (as when the proxy's SCSI rescan fails).
    const { rename } = await import('node:fs/promises');
    const hidden = `${b.lab.byIdDir}.hidden`;
    await rename(b.lab.byIdDir, hidden);
    // A plain file where the folder was: no device link can appear in it.
    const { writeFile } = await import('node:fs/promises');
    await writeFile(b.lab.byIdDir, '');
    try {
      const { runId } = await b.newRun(['app01'], 'hotadd', { failoverToNetwork: true, cbtSanityRate: 0 });
      await b.runAll(runId);
      const { run, vm, point } = await outcome(b, runId);
      expect(run.status, vm.error ?? '').toBe('warning');
      expect(vm.disks.map((d) => d.transport)).toEqual(['nbdssl', 'nbdssl']);
      expect((vm.disks[0]!.transportReason as string[]).join(' | ')).toMatch(/HotAdd failed: the hot-added disk .* did not appear .*; failover to NBDSSL/);
      const lvm = await b.lab.getVm('app01');
      expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(lvm.disks[1]!.key))).toBe(truth);
      await nothingLeftBehind(b, 'app01');
    } finally {
      const { rm } = await import('node:fs/promises');
      await rm(b.lab.byIdDir, { recursive: true, force: true });
      await rename(hidden, b.lab.byIdDir);
    }
  });

  it('manual HotAdd whose device fails mid-copy (fake device layer: reads fail after 8 MiB) continues that disk over the network, bit-exact, and detaches', async () => {
    await b.lab.createVm({ name: 'flaky01', cbt: true, disks: [{ capacityBytes: 32 * MiB }] });
    await b.lab.guestWrite('flaky01', 0, [{ offset: 0, length: 24 * MiB, pattern: 'random', seed: 91 }]);
    const truth = await b.lab.diskSha256('flaky01', 0);
    const real = b.devices;
    b.devicesOverride = {
      ...real,
      async openHotAdded(uuid, capacity) {
        const r = await real.openHotAdded(uuid, capacity);
        let served = 0;
        return {
          device: r.device,
          capacity: r.capacity,
          async read(offset: number, length: number, into?: Buffer) {
            if (served >= 8 * MiB) throw new Error('fake: the SCSI path to the hot-added disk went away');
            served += length;
            return r.read(offset, length, into);
          },
          close: () => r.close(),
        };
      },
    };
    try {
      const { runId } = await b.newRun(['flaky01'], 'hotadd', { failoverToNetwork: true, cbtSanityRate: 0 });
      await b.runAll(runId);
      const { run, vm, point } = await outcome(b, runId);
      expect(run.status, vm.error ?? '').toBe('warning');
      const disk = vm.disks[0]!;
      expect(disk.transport).toBe('nbdssl');
      expect(disk.transportReason).toEqual(['HOTADD: chosen manually', 'HotAdd failed mid-copy: fake: the SCSI path to the hot-added disk went away; failover to NBDSSL']);
      expect(Number(disk.bytesRead)).toBe(24 * MiB);
      expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String((await b.lab.getVm('flaky01')).disks[0]!.key))).toBe(truth);
      await nothingLeftBehind(b, 'flaky01');
    } finally {
      b.devicesOverride = null;
    }
  });

  it('automatic mode: SAN or HotAdd failing mid-disk (fake device layer: reads fail after 8 MiB) continues that disk over the network from where it stopped, even with failover off; the run ends warning, bit-exact', async () => {
    await b.lab.createVm({ name: 'flaky02', cbt: true, disks: [{ capacityBytes: 32 * MiB }] });
    await b.lab.guestWrite('flaky02', 0, [{ offset: 0, length: 24 * MiB, pattern: 'random', seed: 92 }]);
    const truth = await b.lab.diskSha256('flaky02', 0);
    const real = b.devices;
    const failing = <R extends { read(offset: number, length: number, into?: Buffer): Promise<Buffer> }>(r: R): R => {
      let served = 0;
      return Object.assign(Object.create(r) as R, {
        async read(offset: number, length: number, into?: Buffer) {
          if (served >= 8 * MiB) throw new Error('fake: the path to the LUN or hot-added disk went away');
          served += length;
          return r.read(offset, length, into);
        },
      });
    };
    const opened: string[] = [];
    b.devicesOverride = {
      ...real,
      async openHotAdded(uuid, capacity) {
        opened.push('hotadd');
        return failing(await real.openHotAdded(uuid, capacity));
      },
      async openSan(...args: Parameters<typeof real.openSan>) {
        opened.push('san');
        return failing(await real.openSan(...args));
      },
    };
    try {
      const { runId } = await b.newRun(['flaky02'], 'automatic', { failoverToNetwork: false, cbtSanityRate: 0 });
      await b.runAll(runId);
      const { run, vm, point } = await outcome(b, runId);
      expect(run.status, `${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toBe('warning');
      expect(opened).toHaveLength(1);
      const disk = vm.disks[0]!;
      expect(disk.transport).toBe('nbdssl');
      const reasons = disk.transportReason as string[];
      expect(reasons.at(-1)).toBe(`${transportLabel(opened[0])} failed mid-copy: fake: the path to the LUN or hot-added disk went away; failover to NBDSSL`);
      expect(JSON.stringify(vm.log)).toContain(`disk Hard disk 1: ${transportLabel(opened[0])} read failed at 8 MiB`);
      // Only what was left: 24 MiB allocated, read once in all.
      expect(Number(disk.bytesRead)).toBe(24 * MiB);
      expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String((await b.lab.getVm('flaky02')).disks[0]!.key))).toBe(truth);
      await nothingLeftBehind(b, 'flaky02');
    } finally {
      b.devicesOverride = null;
    }
  });

  it('the job option enables CBT on a VM that has it off, and the backup uses it at once', async () => {
    await b.lab.createVm({ name: 'cbt-later', cbt: false, disks: [{ capacityBytes: 8 * MiB }] });
    await b.lab.guestWrite('cbt-later', 0, [{ offset: 1 * MiB, length: 1 * MiB, pattern: 'random', seed: 61 }]);
    const { runId } = await b.newRun(['cbt-later'], 'nbdssl', { enableCbt: true });
    await b.runAll(runId);
    const { run, vm, point } = await outcome(b, runId);
    expect(run.status, vm.error ?? '').toMatch(/succeeded|warning/);
    expect(JSON.stringify(vm.log)).toContain('enabling Changed Block Tracking on the VM');
    expect(vm.disks[0]!.cbtUsed).toBe(true);
    expect(Object.keys(point!.changeIds as object)).toHaveLength(1);
    expect((await b.lab.getVm('cbt-later')).cbt).toBe(true);
  });

  it('cancel in the middle of the copy stops reading, commits nothing and cleans up', async () => {
    // 512 MiB to copy: progress is published at most every 250 ms, so an event past the first 10 MiB
    // comes long before the copy could end (it would have to run at over 2 GiB/s).
    await b.lab.createVm({ name: 'cancel01', cbt: true, powerOn: true, disks: [{ capacityBytes: 1024 * MiB }] });
    await b.lab.guestWrite('cancel01', 0, [{ offset: 0, length: 512 * MiB, pattern: 'random', seed: 71 }]);
    const { runId } = await b.newRun(['cancel01'], 'nbdssl', { cbtSanityRate: 0 });
    // Cancel once 10 MiB have been copied: synchronously, from the progress event itself.
    // (Not at the first bytes: those are written to the row at once, later progress at most
    // once a second, and the last counters must still reach the row.)
    b.onEvent = (e) => {
      if (e.type === 'disk.progress' && (e.bytesRead as number) >= 10 * MiB) b.cancelled.add(runId);
    };
    try {
      await b.runAll(runId);
    } finally {
      b.onEvent = null;
    }
    const { run, vm, point } = await outcome(b, runId);
    expect(run.status).toBe('cancelled');
    expect(point).toBeNull();
    expect(vm.disks.reduce((n, d) => n + Number(d.bytesRead), 0)).toBeLessThan(512 * MiB);
    // No disk row is left claiming it is still being read.
    expect(vm.disks.map((d) => d.phase).filter((p) => p !== 'cancelled' && p !== 'done')).toEqual([]);
    // What a reload shows is what the live view last showed: each disk row holds its last published counters.
    for (const d of vm.disks) {
      const last = b.events.filter((e) => e.type === 'disk.progress' && e.runVmId === vm.id && e.deviceKey === d.deviceKey).at(-1);
      expect(last, `no progress event for ${d.label}`).toBeDefined();
      expect({ read: Number(d.bytesRead), written: Number(d.bytesWritten), skipped: Number(d.bytesSkipped) }).toEqual({ read: last!.bytesRead, written: last!.bytesWritten, skipped: last!.bytesSkipped });
    }
    expect(JSON.stringify(vm.log)).toContain('cancelled: nothing was committed and everything was cleaned up');
    await nothingLeftBehind(b, 'cancel01');
  });

  it('cancel stops the VM, commits nothing and cleans up', async () => {
    const { runId } = await b.newRun(['app01'], 'nbdssl');
    b.cancelled.add(runId);
    await b.runAll(runId);
    const { run, point } = await outcome(b, runId);
    expect(run.status).toBe('cancelled');
    expect(point).toBeNull();
    await nothingLeftBehind(b, 'app01');
  });
});
