/**
 * restoreVm's import-lease path against in-memory FAKES of vSphere (memory-ports.ts, extended here with a fake
 * ImportVApp whose lease, like vSphere's, holds the VM until it is completed or aborted), from a real restore
 * point in a tmp-dir repository: a new VM written over the network is created through the lease and each disk
 * uploaded thin (only non-zero grains), then verified; a failed upload aborts the lease before the VM is
 * destroyed; HotAdd and full writes keep their paths.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { shutdownWorkerPools } from '@vaultline/repository';
import { memoryLogger } from '@vaultline/logger';
import { restoreVm, type RestoreVmDeps, type RestoreVmInput } from '../src/restore/restore-vm.ts';
import type { DiskImageSource, HardwareDisk, NewVm, VmHardware, VmImport } from '../src/restore/ports.ts';
import { FakeRestoreDevices, FakeRestorePort, MemoryJournal, MiB, PROXY, Timeline, restorePointWithHardware, seededBytes, tempRepository, type TempRepository } from './memory-ports.ts';

const GRAIN = 64 * 1024;

/** FakeRestorePort plus a fake ImportVApp: the lease uploads like a streamOptimized VMDK (zero grains left out). */
class FakeImportPort extends FakeRestorePort {
  readonly leases: { vm: string; state: 'open' | 'completed' | 'aborted' }[] = [];
  /** file key -> bytes that reached the disk (the thin disk's allocation) */
  readonly landed = new Map<string, number>();
  readonly readOrderViolations: string[] = [];
  /** The upload fails once this many bytes were sent (any disk). */
  failAfterBytes: number | undefined;

  async importVm(hw: VmHardware, target: NewVm): Promise<VmImport> {
    this.timeline.note(`restore.importVm.call ${target.name}`);
    const vmMoref = await this.createVm(hw, target);
    const lease = { vm: vmMoref, state: 'open' as 'open' | 'completed' | 'aborted' };
    this.leases.push(lease);
    const { timeline, landed, readOrderViolations } = this;
    const diskBytes = (fileName: string) => this.diskBytes(fileName);
    const failAfter = () => this.failAfterBytes;
    return {
      vmMoref,
      async uploadDisk(disk: HardwareDisk, _index: number, source: DiskImageSource) {
        if (lease.state !== 'open') throw new Error('the lease is over');
        const bytes = diskBytes(disk.fileName);
        const key = FakeRestorePort.fileKey(disk.fileName);
        let last = 0;
        let sent = 0;
        for await (const e of source.extents()) {
          for (let o = e.offset; o < e.offset + e.length; o += MiB) {
            const len = Math.min(MiB, e.offset + e.length - o);
            if (o < last) readOrderViolations.push(`read ${o} after ${last}`);
            const data = await source.read(o, len);
            last = o + len;
            for (let g = 0; g < data.length; g += GRAIN) {
              const grain = data.subarray(g, g + GRAIN);
              if (grain.every((x) => x === 0)) continue;
              grain.copy(bytes, o + g);
              sent += grain.length;
              landed.set(key, (landed.get(key) ?? 0) + grain.length);
              const limit = failAfter();
              if (limit !== undefined && sent > limit) throw new Error('HTTP 500: upload refused by the host');
            }
          }
        }
        timeline.note(`restore.import.upload ${key}`);
        return { streamBytes: sent };
      },
      async complete() {
        lease.state = 'completed';
        timeline.note(`restore.import.complete ${vmMoref}`);
      },
      async abort() {
        lease.state = 'aborted';
        timeline.note(`restore.import.abort ${vmMoref}`);
      },
    };
  }

  override async destroyRestored(moref: string, restoreId: string): Promise<void> {
    // vSphere refuses to destroy a VM while its import lease holds it.
    if (this.leases.some((l) => l.vm === moref && l.state === 'open')) {
      this.violations.push(`destroyRestored ${moref} while its import lease is open`);
      throw new Error(`InvalidState: ${moref} is held by an import lease`);
    }
    return super.destroyRestored(moref, restoreId);
  }
}

const repos: TempRepository[] = [];
afterEach(async () => {
  for (const r of repos.splice(0)) await r.dispose();
});
afterAll(async () => {
  await shutdownWorkerPools();
});

/** A 4 MiB disk with 1 MiB of data and zeros elsewhere, and a 2 MiB one with one grain of data. */
function images(): { key: number; bytes: Buffer }[] {
  const a = Buffer.alloc(4 * MiB);
  seededBytes(21, MiB).copy(a, MiB);
  const b = Buffer.alloc(2 * MiB);
  seededBytes(22, GRAIN).copy(b, 2 * MiB - GRAIN);
  return [
    { key: 2000, bytes: a },
    { key: 2001, bytes: b },
  ];
}

async function setup() {
  const tr = await tempRepository();
  repos.push(tr);
  const imgs = images();
  const { ref } = await restorePointWithHardware(tr.repo, imgs);
  const timeline = new Timeline();
  const port = new FakeImportPort(timeline);
  const devices = new FakeRestoreDevices(port, timeline);
  const journal = new MemoryJournal(timeline);
  const runLog: string[] = [];
  const input: RestoreVmInput = { repo: tr.repo, ref, name: 'app01-r', restoreId: 'restore-0002', placement: { resourcePool: 'Resources', folder: 'vm' } };
  const deps: RestoreVmDeps = { vsphere: port, journal, log: memoryLogger('core-fake-import', 'warn').log, devices, proxy: { proxyVm: PROXY }, runLog: (level, m) => runLog.push(`${level}: ${m}`) };
  return { images: imgs, timeline, port, journal, runLog, input, deps };
}

describe('restoreVm through an import lease (against fakes of vSphere)', () => {
  it('a new VM over the network: created through the lease, each disk uploaded thin (only its data), the lease completed, then every disk read back', async () => {
    const s = await setup();
    const r = await restoreVm({ ...s.input, transport: 'nbdssl' }, s.deps);
    expect(r.disks.map((d) => d.transport)).toEqual(['nbdssl', 'nbdssl']);
    expect(s.timeline.has('restore.importVm.call app01-r')).toBe(true);
    expect(s.timeline.has(/^restore\.putFile /)).toBe(false);
    for (const [i, img] of s.images.entries()) expect(s.port.diskBytes(r.disks[i]!.fileName).equals(img.bytes)).toBe(true);
    expect([...s.port.landed.values()]).toEqual([MiB, GRAIN]);
    expect(r.disks.map((d) => [d.bytesWritten, d.bytesSkipped])).toEqual([
      [MiB, 3 * MiB],
      [GRAIN, 2 * MiB - GRAIN],
    ]);
    expect(s.port.readOrderViolations).toEqual([]);
    expect(s.port.leases.map((l) => l.state)).toEqual(['completed']);
    expect(s.runLog).toContain('info: disk Hard disk 1: wrote 1 MiB of 4 MiB as a thin disk through an import lease (1 MiB sent as a streamOptimized VMDK over NBDSSL; 3 MiB of holes and zeros not written) in ' + s.runLog.find((l) => l.startsWith('info: disk Hard disk 1: wrote'))!.split(' in ').at(-1));
    const complete = s.timeline.first(/^restore\.import\.complete /);
    expect(s.timeline.first(/^restore\.import\.upload .*_1-flat/)).toBeLessThan(complete);
    expect(s.runLog.findIndex((l) => l.includes('import lease of app01-r completed'))).toBeLessThan(s.runLog.findIndex((l) => l.includes('read back and verified')));
    expect(s.journal.open).toEqual([]);
  });

  it('a failed upload aborts the lease first, then the half-made VM is destroyed through its marker; the journal ends empty', async () => {
    const s = await setup();
    s.port.failAfterBytes = 4 * GRAIN;
    const err = await restoreVm({ ...s.input, transport: 'nbd' }, s.deps).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/upload refused/);
    expect(s.port.leases.map((l) => l.state)).toEqual(['aborted']);
    expect(s.timeline.first(/^restore\.import\.abort /)).toBeLessThan(s.timeline.first(/^restore\.destroyRestored /));
    expect(s.port.destroyed.map((d) => d.name)).toEqual(['app01-r']);
    expect(s.port.violations).toEqual([]);
    expect(s.journal.open).toEqual([]);
  });

  it('a replace over the network keeps CreateVM and the full write (the log says so), then swaps', async () => {
    const s = await setup();
    s.port.addVm({ moref: 'vm-orig', name: 'app01-r', powerState: 'poweredOn', template: false, datastores: ['ds1'], disks: [] });
    const r = await restoreVm({ ...s.input, transport: 'nbdssl', replace: { confirm: 'app01-r' } }, s.deps);
    expect(s.port.leases).toEqual([]);
    expect(r.replaced?.moref).toBe('vm-orig');
    expect(r.disks.map((d) => d.bytesWritten)).toEqual([4 * MiB, 2 * MiB]);
    expect(s.runLog.filter((l) => / in full \(every byte, zeros included: the disk is allocated whole\) over NBDSSL /.test(l))).toHaveLength(2);
  });

  it('HotAdd (automatic with a proxy) still creates the VM with CreateVM; a port without importVm writes network disks in full and says so', async () => {
    const s = await setup();
    const r = await restoreVm(s.input, s.deps);
    expect(r.disks.map((d) => d.transport)).toEqual(['hotadd', 'hotadd']);
    expect(s.port.leases).toEqual([]);

    const t = await setup();
    const plain = new FakeRestorePort(t.timeline);
    const r2 = await restoreVm({ ...t.input, transport: 'nbdssl' }, { ...t.deps, vsphere: plain, devices: new FakeRestoreDevices(plain, t.timeline) });
    expect(r2.disks.map((d) => d.bytesWritten)).toEqual([4 * MiB, 2 * MiB]);
    expect(t.runLog.some((l) => l.startsWith('info: disk Hard disk 1: wrote 4 MiB of 4 MiB in full (every byte, zeros included: the disk is allocated whole) over NBDSSL'))).toBe(true);
  });
});
