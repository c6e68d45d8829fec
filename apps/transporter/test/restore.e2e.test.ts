/**
 * Full VM restores against the lab vCenter (real vcsim, real loop devices for
 * HotAdd): each write transport, newest and older points, bit-exact against
 * the lab's ground truth, hardware recreated; the restore job from the run row
 * with RunDisk rows, progress events and reasons like a backup; drills; disk
 * restore; placement; the sweep's removal of a killed restore's VM.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { DiskProgressSchema } from '@vaultline/contracts';
import { restoreVm, SAN_WRITE_REASON } from '@vaultline/core';
import { Repository } from '@vaultline/repository';
import { memoryLogger } from '@vaultline/logger';
import { parseDatastorePath, type VSphereClient } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import type { RestoreClientSession } from '../src/adapters/vsphere-port.ts';
import { sweepOrphans } from '../src/sweep.ts';
import { isRoot, startBench, type Bench, type BenchPoint } from './fixture.ts';

const MiB = 1024 * 1024;

type Point = BenchPoint;

describe.runIf(isRoot)('full VM restore to a new VM through each write transport, verified bit-exact (lab vCenter)', () => {
  let b: Bench;
  let session: RestoreClientSession;
  let client: VSphereClient;
  let repo: Repository;
  const points: Point[] = [];
  let legacy: Point;

  const backup = (vm: string, disks: number): Promise<Point> => b.backupPoint(vm, disks);

  beforeAll(async () => {
    b = await startBench();
    session = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
    client = session.client;
    await b.lab.createVm({ name: 'erp01', cbt: true, cpus: 4, memoryMiB: 8192, nics: ['VM Network'], disks: [{ capacityBytes: 12 * MiB }, { capacityBytes: 6 * MiB, controller: 'lsilogic' }] });
    for (const [round, seed] of [[0, 1], [1, 2]] as const) {
      await b.lab.guestWrite('erp01', 0, [{ offset: round * 3 * MiB, length: 2 * MiB, pattern: 'random', seed }]);
      await b.lab.guestWrite('erp01', 1, [{ offset: 1 * MiB + round * 1000, length: 1 * MiB, pattern: 'text', seed: seed + 10 }]);
      points.push(await backup('erp01', 2));
    }
    await b.lab.createVm({ name: 'legacy01', cbt: true, disks: [{ capacityBytes: 4 * MiB, controller: 'ide' }, { capacityBytes: 3 * MiB }] });
    await b.lab.guestWrite('legacy01', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text', seed: 31 }]);
    await b.lab.guestWrite('legacy01', 1, [{ offset: 1 * MiB, length: 1 * MiB, pattern: 'random', seed: 32 }]);
    legacy = await backup('legacy01', 2);
    repo = await Repository.open(b.repoDir);
  });
  afterAll(async () => {
    await repo?.close();
    await session?.close();
    await b?.close();
  });

  const journal = () => pgJournal(b.db, b.transporterId, b.journalKey);
  const deps = (lines: string[] = []) => ({
    vsphere: session.port,
    journal: journal(),
    log: memoryLogger('r').log,
    devices: b.devices,
    proxy: session.facts,
    runLog: (_l: string, m: string) => void lines.push(m),
  });
  const proxyForeignDisks = async () => (await b.lab.getVm(b.lab.proxyVm.name)).disks.map((d) => d.fileName).filter((f) => !f.includes(b.lab.proxyVm.name));

  for (const transport of ['hotadd', 'nbdssl', 'nbd'] as const) {
    for (const which of ['newest', 'older'] as const) {
      it(`restores the ${which} point through ${transport}: the new VM's disks equal that point's ground truth and its hardware matches`, async () => {
        const p = which === 'newest' ? points[1]! : points[0]!;
        const name = `erp01-${transport}-${which}`;
        const lines: string[] = [];
        const result = await restoreVm({ repo, ref: { vmId: p.vmId, id: p.id }, name, restoreId: randomUUID(), transport, vcenterId: b.vcenterId }, deps(lines));
        expect(result.disks.map((d) => d.transport), JSON.stringify(result.disks.map((d) => d.reasons))).toEqual([transport, transport]);
        expect(result.disks.map((d) => d.sha256)).toEqual(p.truth);
        expect(await b.lab.diskSha256(name, 0)).toBe(p.truth[0]);
        expect(await b.lab.diskSha256(name, 1)).toBe(p.truth[1]);

        const restored = await client.inventory.vm(result.vmMoref);
        const source = await client.inventory.vm((await b.lab.getVm('erp01')).moref);
        expect(restored.name).toBe(name);
        expect(restored.numCpu).toBe(4);
        expect(restored.memoryMiB).toBe(8192);
        expect(restored.guestId).toBe(source.guestId);
        const shape = (d: { capacityBytes: number; controller: string; unitNumber: number; thin: boolean }) => [d.capacityBytes, d.controller, d.unitNumber, d.thin];
        expect(restored.disks.map(shape)).toEqual(source.disks.map(shape));
        expect(restored.controllers.map((c) => c.kind).sort()).toEqual(source.controllers.map((c) => c.kind).sort());
        expect(restored.nics.map((n) => [n.type, n.networkName])).toEqual([['VirtualVmxnet3', 'VM Network']]);
        expect(await client.vms.restoreIdOf(result.vmMoref)).toBeDefined();

        if (transport === 'hotadd') {
          // Only the restore point's data was written: the new thin disk holds about 4 MiB of its 12.
          const flat = (await b.lab.getVm(name)).disks[0]!.flatPath;
          expect(fs.statSync(flat).blocks * 512).toBeLessThanOrEqual(5 * MiB);
          expect(result.disks[0]!.bytesSkipped).toBeGreaterThanOrEqual(7 * MiB);
          expect(lines.some((l) => /attached to vaultline-proxy as device \d+ \(independent_persistent\)/.test(l))).toBe(true);
          expect(lines.filter((l) => l.includes('detached from vaultline-proxy'))).toHaveLength(2);
        }
        expect(await proxyForeignDisks()).toEqual([]);
        expect(fs.readdirSync(b.lab.byIdDir).filter((n) => !b.lab.datastores.some((d) => d.naa && n.endsWith(d.naa.slice(4))))).toEqual([]);
        expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
      });
    }
  }

  it('automatic, as the restore job: HotAdd for the SCSI disk with SAN skipped and why, the IDE disk over the network with the reason; RunDisk rows and disk.progress events like a backup', async () => {
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: legacy.rowId, name: 'legacy01-restored', powerOn: true });
    const mark = b.events.length;
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: { orderBy: { label: 'asc' } } } } } });
    expect(done.status, done.error ?? '').toBe('succeeded');
    const item = done.vms[0]!;
    expect(item.vmMoref).toMatch(/^vm-/);
    const [ide, scsi] = item.disks;
    expect(ide).toMatchObject({ label: 'Hard disk 1', transport: 'nbdssl', phase: 'done', capacityBytes: BigInt(4 * MiB) });
    expect(ide!.transportReason).toEqual([SAN_WRITE_REASON, 'HotAdd: disk on IDE controller', "NBDSSL: write over the datastore's HTTPS interface"]);
    expect(scsi).toMatchObject({ label: 'Hard disk 2', transport: 'hotadd', phase: 'done', capacityBytes: BigInt(3 * MiB) });
    expect(scsi!.transportReason).toEqual([SAN_WRITE_REASON, 'HotAdd: attach the new disk to proxy VM vaultline-proxy and write it there']);
    expect(scsi!.bytesWritten).toBe(BigInt(1 * MiB));
    expect(scsi!.bytesSkipped).toBe(BigInt(2 * MiB));
    expect(ide!.bytesWritten).toBe(BigInt(4 * MiB));

    const progress = b.events.slice(mark).filter((e) => e.type === 'disk.progress' && e.runId === runId);
    for (const e of progress) DiskProgressSchema.parse(e);
    const last = (key: number) => progress.filter((e) => e.deviceKey === key).at(-1) as { phase: string; bytesTotal: number; transport: string } | undefined;
    expect(last(ide!.deviceKey)).toMatchObject({ phase: 'done', bytesTotal: 4 * MiB, transport: 'nbdssl' });
    expect(last(scsi!.deviceKey)).toMatchObject({ phase: 'done', bytesTotal: 3 * MiB, transport: 'hotadd' });
    // The verify pass is part of the progress: every disk is read back whole, counted as it goes, and stored.
    for (const d of [ide!, scsi!]) {
      const ticks = progress.filter((e) => e.deviceKey === d.deviceKey) as unknown as { phase: string; bytesVerified: number; verifyTotal: number }[];
      expect(ticks.every((t) => t.verifyTotal === Number(d.capacityBytes))).toBe(true);
      const verified = ticks.filter((t) => t.phase === 'verifying').map((t) => t.bytesVerified);
      expect(verified[0]).toBe(0);
      expect(verified).toEqual([...verified].sort((x, y) => x - y));
      expect(ticks.at(-1)!.bytesVerified).toBe(Number(d.capacityBytes));
      expect(d.bytesVerified).toBe(d.capacityBytes);
    }
    expect(b.events.slice(mark).some((e) => e.type === 'vm.phase' && e.phase === 'writing')).toBe(true);
    // Where the time went, like a backup's: reading the restore point, processing (hashing, finding zeros), writing.
    for (const d of [ide!, scsi!]) {
      const busy = d.bottleneck as { source: number; processing: number; target: number } | null;
      expect(busy, `${d.label} keeps its bottleneck`).not.toBeNull();
      expect(busy!.source, `${d.label}: reading the restore point`).toBeGreaterThan(0);
      expect(busy!.processing, `${d.label}: processing`).toBeGreaterThan(0);
      expect(busy!.target, `${d.label}: writing`).toBeGreaterThan(0);
    }

    const log = (item.log as { message: string }[]).map((l) => l.message);
    expect(log).toContain(`disk Hard disk 1: NBDSSL — ${SAN_WRITE_REASON}; HotAdd: disk on IDE controller; NBDSSL: write over the datastore's HTTPS interface`);
    expect(log.some((l) => l.startsWith('disk Hard disk 2: HotAdd — SAN: never used'))).toBe(true);
    expect(log).toContain('powered on legacy01-restored');
    expect(await b.lab.diskSha256('legacy01-restored', 0)).toBe(legacy.truth[0]);
    expect(await b.lab.diskSha256('legacy01-restored', 1)).toBe(legacy.truth[1]);
    expect((await b.lab.getVm('legacy01-restored')).powerState).toBe('poweredOn');
    expect(await proxyForeignDisks()).toEqual([]);
    expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
  });

  it('a drill restores the point to a throwaway VM through HotAdd, verifies it, deletes it, and reports like any run', async () => {
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: points[0]!.rowId, name: 'erp01-drill', drill: true });
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: true } } } });
    expect(done.status, done.error ?? '').toBe('succeeded');
    expect(done.kind).toBe('drill');
    const log = JSON.stringify(done.vms[0]!.log);
    expect(log).toContain(`SHA-256 ${points[0]!.truth[1]} verified`);
    expect(log).toContain('drill passed: erp01-drill restored, verified and deleted');
    expect(done.vms[0]!.disks.map((d) => d.transport)).toEqual(['hotadd', 'hotadd']);
    expect((await client.inventory.vms()).some((v) => v.name === 'erp01-drill')).toBe(false);
    expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
  });

  it('places the VM on the named host, in the named folder, with its NIC moved to the mapped network', async () => {
    const inv = await client.inventory.all();
    const dc = inv.datacenters[0]!;
    const soap = await b.lab.soap();
    await soap.call(`<CreateFolder><_this type="Folder">${dc.vmFolder}</_this><name>Restores</name></CreateFolder>`);
    const source = await client.inventory.vm((await b.lab.getVm('erp01')).moref);
    const otherHost = inv.hosts.find((h) => h.moref !== source.host)!;
    const lines: string[] = [];
    const result = await restoreVm(
      {
        repo,
        ref: { vmId: points[1]!.vmId, id: points[1]!.id },
        name: 'erp01-placed',
        restoreId: randomUUID(),
        placement: { host: otherHost.name, folder: 'vm/Restores', datastore: 'datastore2', networkMap: { 'VM Network': 'DC0_DVPG0' } },
      },
      deps(lines),
    );
    const vm = await client.inventory.vm(result.vmMoref);
    expect(vm.host).toBe(otherHost.moref);
    const folder = (await client.inventory.placementTargets()).folders.find((f) => f.moref === vm.folder);
    expect(folder?.path).toBe('vm/Restores');
    expect(vm.nics.map((n) => n.networkName)).toEqual(['DC0_DVPG0']);
    expect(vm.disks.every((d) => d.fileName.startsWith('[datastore2] '))).toBe(true);
    expect(lines).toContain(`creating VM erp01-placed: host ${otherHost.name}, folder vm/Restores, resource pool Resources, datastore datastore2, network VM Network → DC0_DVPG0`);
    expect(await b.lab.diskSha256('erp01-placed', 0)).toBe(points[1]!.truth[0]);
  });

  it("restores to the source VM's own host and datastore when the datastore's host list has lost that host (a lagging vCenter's view): the host's own list counts too", async () => {
    const source = await client.inventory.vm((await b.lab.getVm('erp01')).moref);
    const dsName = parseDatastorePath(source.disks[0]!.fileName).datastore;
    await b.lab.listDatastoreHost(dsName, source.host!, false);
    try {
      const inv = await client.inventory.all();
      const ds = inv.datastores.find((d) => d.name === dsName)!;
      // The lab now shows what such a vCenter does: the datastore omits the host, the host still lists it.
      expect(ds.hosts.map((h) => h.host)).not.toContain(source.host);
      expect(ds.hosts.length).toBeGreaterThan(0);
      expect(inv.hosts.find((h) => h.moref === source.host)!.datastores).toContain(ds.moref);
      const lines: string[] = [];
      const result = await restoreVm({ repo, ref: { vmId: points[1]!.vmId, id: points[1]!.id }, name: 'erp01-lagging', restoreId: randomUUID() }, deps(lines));
      const vm = await client.inventory.vm(result.vmMoref);
      expect(vm.host).toBe(source.host);
      expect(vm.disks.every((d) => d.fileName.startsWith(`[${dsName}] `))).toBe(true);
      expect(await b.lab.diskSha256('erp01-lagging', 0)).toBe(points[1]!.truth[0]);
    } finally {
      await b.lab.listDatastoreHost(dsName, source.host!, true);
    }
  });

  it("restores one disk as a new disk of an existing VM, leaving the VM's own disks alone", async () => {
    const { restoreDisk } = await import('@vaultline/core');
    await b.lab.createVm({ name: 'target01', cbt: false, disks: [{ capacityBytes: 2 * MiB }] });
    await b.lab.guestWrite('target01', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text', seed: 7 }]);
    const own = await b.lab.diskSha256('target01', 0);
    const target = await b.lab.getVm('target01');
    // Disk keys in a restore point are the source VM's device keys.
    const sourceDisks = (await b.lab.getVm('erp01')).disks;
    const key = String(sourceDisks[1]!.key);
    const r = await restoreDisk({ repo, ref: { vmId: points[0]!.vmId, id: points[0]!.id }, diskKey: key, targetVm: target.moref }, { vsphere: session.port, journal: journal(), log: memoryLogger('d').log });
    expect(r.sha256).toBe(points[0]!.truth[1]);
    const after = await b.lab.getVm('target01');
    expect(after.disks).toHaveLength(2);
    // The lab lists disks in its own order: find them by file.
    const ownIndex = after.disks.findIndex((d) => d.fileName === target.disks[0]!.fileName);
    const newIndex = after.disks.findIndex((d) => d.fileName === r.fileName);
    expect(ownIndex).toBeGreaterThanOrEqual(0);
    expect(newIndex).toBeGreaterThanOrEqual(0);
    expect(await b.lab.diskSha256('target01', ownIndex)).toBe(own);
    expect(await b.lab.diskSha256('target01', newIndex)).toBe(points[0]!.truth[1]);

    // The same through a restore run, as the Director queues it.
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: points[1]!.rowId, name: 'target01', disk: { key: String(sourceDisks[0]!.key), targetVm: target.moref } });
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: true } });
    expect(done.status, done.error ?? '').toBe('succeeded');
    const disks = (await b.lab.getVm('target01')).disks;
    expect(disks).toHaveLength(3);
    const written = /disk written to (\[[^\]]+\] \S+\.vmdk)/.exec(JSON.stringify(done.vms[0]!.log))?.[1];
    const index = disks.findIndex((d) => d.fileName === written);
    expect(index, `${written} among ${disks.map((d) => d.fileName).join(', ')}`).toBeGreaterThanOrEqual(0);
    expect(await b.lab.diskSha256('target01', index)).toBe(points[1]!.truth[0]);
  });

  it('the sweep removes a VM left by a restore that was killed, and only that one', async () => {
    const restoreId = randomUUID();
    const j = journal();
    // What a killed restore leaves: the journal row, and a VM with its marker.
    const source = await client.inventory.vm((await b.lab.getVm('erp01')).moref);
    const placement = await client.vms.placement(source.moref);
    const { createSpecFromHardware } = await import('@vaultline/vsphere');
    const snapHw = (await repo.readManifest({ vmId: points[1]!.vmId, id: points[1]!.id })).vm as { hardware: Parameters<typeof createSpecFromHardware>[0] };
    await j.add('restore_vm', { restoreId, name: 'erp01-killed', vm: null }, { vcenterId: b.vcenterId });
    await client.vms.create(createSpecFromHardware(snapHw.hardware, { name: 'erp01-killed', restoreId, folder: placement.folder!, resourcePool: placement.resourcePool!, datastore: parseDatastorePath(source.disks[0]!.fileName).datastore }));
    const report = await sweepOrphans({
      journal: j,
      vsphere: (id) => b.connector.portFor(id),
      vcenterIds: async () => [b.vcenterId],
      devices: b.devices,
      proxyVm: (id) => b.connector.proxyVm(id),
      activeRunVmIds: () => new Set(),
      log: memoryLogger('s').log,
    });
    expect(report.restoredVmsRemoved).toEqual(['erp01-killed']);
    expect(report.failures).toEqual([]);
    const names = (await client.inventory.vms()).map((v) => v.name);
    expect(names).not.toContain('erp01-killed');
    expect(names).toContain('erp01');
    expect(names).toContain('erp01-hotadd-newest');
  });
});
