import { randomUUID } from 'node:crypto';
import { Repository } from '@vaultline/repository';
import { VSphereClient } from '@vaultline/vsphere';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import { restoreVm, RestoreError } from '../src/restore/restore-vm.ts';
import { sweepOrphans } from '../src/backup/sweep.ts';
import { startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

describe('full VM restore to a new VM over the network, verified bit-exact (lab vCenter)', () => {
  let b: Bench;
  let client: VSphereClient;
  let repo: Repository;
  const points: { id: string; vmId: string; truth: string[] }[] = [];

  beforeAll(async () => {
    b = await startBench();
    client = await VSphereClient.connect({ url: b.lab.url, username: b.lab.username, password: b.lab.password, thumbprintSha256: b.lab.thumbprintSha256 });
    await b.lab.createVm({ name: 'erp01', cbt: true, cpus: 4, memoryMiB: 8192, disks: [{ capacityBytes: 12 * MiB }, { capacityBytes: 6 * MiB, controller: 'lsilogic' }] });
    for (const [round, seed] of [[0, 1], [1, 2]] as const) {
      await b.lab.guestWrite('erp01', 0, [{ offset: round * 3 * MiB, length: 2 * MiB, pattern: 'random', seed }]);
      await b.lab.guestWrite('erp01', 1, [{ offset: 1 * MiB + round * 1000, length: 1 * MiB, pattern: 'text', seed: seed + 10 }]);
      const truth = [await b.lab.diskSha256('erp01', 0), await b.lab.diskSha256('erp01', 1)];
      const { runId } = await b.newRun(['erp01'], 'nbdssl');
      await b.runAll(runId);
      const item = await b.db.runVm.findFirstOrThrow({ where: { runId } });
      const point = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: item.id } });
      points.push({ id: point.repoPointId, vmId: point.vmInstanceUuid, truth });
    }
    repo = await Repository.open(b.repoDir);
  });
  afterAll(async () => {
    await repo?.close();
    await client?.close();
    await b?.close();
  });

  const journal = () => pgJournal(b.db, b.transporterId);

  for (const which of ['newest', 'older'] as const) {
    it(`restores the ${which} point: the new VM's disks equal that day's ground truth and its hardware matches`, async () => {
      const p = which === 'newest' ? points[1]! : points[0]!;
      const name = `erp01-restored-${which}`;
      const result = await restoreVm({ repo, ref: { vmId: p.vmId, id: p.id }, name, restoreId: randomUUID() }, { client, journal: journal(), log: memoryLogger('r').log });
      expect(result.disks.map((d) => d.sha256)).toEqual(p.truth);
      expect(await b.lab.diskSha256(name, 0)).toBe(p.truth[0]);
      expect(await b.lab.diskSha256(name, 1)).toBe(p.truth[1]);
      const restored = await client.inventory.vm(result.vmMoref);
      const source = await client.inventory.vm((await b.lab.getVm('erp01')).moref);
      expect(restored.numCpu).toBe(source.numCpu);
      expect(restored.memoryMiB).toBe(source.memoryMiB);
      expect(restored.disks.map((d) => [d.capacityBytes, d.controller])).toEqual(source.disks.map((d) => [d.capacityBytes, d.controller]));
      expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
    });
  }

  it('runs as a Transporter job from the run row the Director writes, and logs each verified disk', async () => {
    const { createRestoreVmHandler } = await import('../src/handlers/restore-vm.handler.ts');
    const point = await b.db.restorePoint.findFirstOrThrow({ where: { repoPointId: points[1]!.id } });
    const run = await b.db.jobRun.create({
      data: { kind: 'restore', request: { restorePointId: point.id, name: 'erp01-via-job', powerOn: true, vcenterId: b.vcenterId }, vms: { create: [{ vmMoref: '', vmName: 'erp01-via-job' }] } },
      include: { vms: true },
    });
    const events: { type: string }[] = [];
    const handle = createRestoreVmHandler({ db: b.db, secretKey: b.secretKey, transporterId: b.transporterId, journal: journal(), log: memoryLogger('h').log, publish: (e) => events.push(e) });
    await handle({ runVmId: run.vms[0]!.id });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: run.id }, include: { vms: true } });
    expect(done.status, done.error ?? '').toBe('succeeded');
    expect(JSON.stringify(done.vms[0]!.log)).toContain(`SHA-256 ${points[1]!.truth[0]} verified`);
    expect(done.vms[0]!.vmMoref).toMatch(/^vm-/);
    expect((await b.lab.getVm('erp01-via-job')).powerState).toBe('poweredOn');
    expect(events.some((e) => e.type === 'run.finished')).toBe(true);
  });

  it('a drill restores the point to a throwaway VM, verifies it, deletes it, and reports like any run', async () => {
    const { createRestoreVmHandler } = await import('../src/handlers/restore-vm.handler.ts');
    const point = await b.db.restorePoint.findFirstOrThrow({ where: { repoPointId: points[0]!.id } });
    const run = await b.db.jobRun.create({
      data: { kind: 'drill', request: { restorePointId: point.id, name: 'erp01-drill', powerOn: false, drill: true, vcenterId: b.vcenterId }, vms: { create: [{ vmMoref: '', vmName: 'erp01-drill' }] } },
      include: { vms: true },
    });
    const handle = createRestoreVmHandler({ db: b.db, secretKey: b.secretKey, transporterId: b.transporterId, journal: journal(), log: memoryLogger('h').log, publish: () => undefined });
    await handle({ runVmId: run.vms[0]!.id });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: run.id }, include: { vms: true } });
    expect(done.status, done.error ?? '').toBe('succeeded');
    const log = JSON.stringify(done.vms[0]!.log);
    expect(log).toContain(`SHA-256 ${points[0]!.truth[1]} verified`);
    expect(log).toContain('drill passed: erp01-drill restored, verified and deleted');
    expect((await client.inventory.vms()).some((v) => v.name === 'erp01-drill')).toBe(false);
  });

  it("restores one disk as a new disk of an existing VM, leaving the VM's own disks alone", async () => {
    const { restoreDisk } = await import('../src/restore/restore-vm.ts');
    await b.lab.createVm({ name: 'target01', cbt: false, disks: [{ capacityBytes: 2 * MiB }] });
    await b.lab.guestWrite('target01', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text', seed: 7 }]);
    const own = await b.lab.diskSha256('target01', 0);
    const target = await b.lab.getVm('target01');
    // Disk keys in a restore point are the source VM's device keys.
    const sourceDisks = (await b.lab.getVm('erp01')).disks;
    const key = String(sourceDisks[1]!.key);
    const r = await restoreDisk({ repo, ref: { vmId: points[0]!.vmId, id: points[0]!.id }, diskKey: key, targetVm: target.moref }, { client, log: memoryLogger('d').log });
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
    const { createRestoreVmHandler } = await import('../src/handlers/restore-vm.handler.ts');
    const point = await b.db.restorePoint.findFirstOrThrow({ where: { repoPointId: points[1]!.id } });
    const run = await b.db.jobRun.create({
      data: { kind: 'restore', request: { restorePointId: point.id, name: 'target01', disk: { key: String(sourceDisks[0]!.key), targetVm: target.moref }, vcenterId: b.vcenterId }, vms: { create: [{ vmMoref: '', vmName: 'target01' }] } },
      include: { vms: true },
    });
    await createRestoreVmHandler({ db: b.db, secretKey: b.secretKey, transporterId: b.transporterId, journal: journal(), log: memoryLogger('h').log, publish: () => undefined })({ runVmId: run.vms[0]!.id });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: run.id }, include: { vms: true } });
    expect(done.status, done.error ?? '').toBe('succeeded');
    const disks = (await b.lab.getVm('target01')).disks;
    expect(disks).toHaveLength(3);
    const written = /disk written to (\[[^\]]+\] \S+\.vmdk)/.exec(JSON.stringify(done.vms[0]!.log))?.[1];
    const index = disks.findIndex((d) => d.fileName === written);
    expect(index, `${written} among ${disks.map((d) => d.fileName).join(', ')}`).toBeGreaterThanOrEqual(0);
    expect(await b.lab.diskSha256('target01', index)).toBe(points[1]!.truth[0]);
  });

  it('refuses a name that exists, creating nothing', async () => {
    const before = (await client.inventory.vms()).length;
    const err = await restoreVm({ repo, ref: { vmId: points[1]!.vmId, id: points[1]!.id }, name: 'erp01', restoreId: randomUUID() }, { client, journal: journal(), log: memoryLogger('r').log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as Error).message).toBe('a VM named erp01 already exists; choose another name (Vaultline never overwrites a VM)');
    expect((await client.inventory.vms()).length).toBe(before);
  });

  it('a damaged restore point fails the restore and leaves no half-created VM', async () => {
    const { readdir, writeFile } = await import('node:fs/promises');
    const path = await import('node:path');
    // Corrupt every pack: reading the disks back must fail.
    const packsDir = path.join(b.repoDir, 'packs');
    const damaged: { file: string; data: Buffer }[] = [];
    const { readFile } = await import('node:fs/promises');
    for (const sub of await readdir(packsDir)) {
      for (const f of await readdir(path.join(packsDir, sub))) {
        const file = path.join(packsDir, sub, f);
        const data = await readFile(file);
        damaged.push({ file, data });
        const bad = Buffer.from(data);
        for (let i = 0; i < Math.min(bad.length, 4096); i++) bad[i]! ^= 0xff;
        await writeFile(file, bad);
      }
    }
    try {
      const fresh = await Repository.open(b.repoDir);
      const err = await restoreVm({ repo: fresh, ref: { vmId: points[1]!.vmId, id: points[1]!.id }, name: 'erp01-from-damage', restoreId: randomUUID() }, { client, journal: journal(), log: memoryLogger('r').log }).catch((e: unknown) => e);
      await fresh.close();
      expect(err).toBeInstanceOf(RestoreError);
      expect((err as Error).message).toMatch(/^restore point .* is damaged: /);
      expect((await client.inventory.vms()).some((v) => v.name === 'erp01-from-damage')).toBe(false);
      expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
    } finally {
      for (const d of damaged) await writeFile(d.file, d.data);
    }
  });

  it('the sweep removes a VM left by a restore that was killed, and only that one', async () => {
    const restoreId = randomUUID();
    const j = journal();
    // What a killed restore leaves: the journal row, and a VM with its marker.
    const source = await client.inventory.vm((await b.lab.getVm('erp01')).moref);
    const placement = await client.vms.placement(source.moref);
    const { createSpecFromHardware, parseDatastorePath } = await import('@vaultline/vsphere');
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
    const names = (await client.inventory.vms()).map((v) => v.name);
    expect(names).not.toContain('erp01-killed');
    expect(names).toContain('erp01');
    expect(names).toContain('erp01-restored-newest');
  });
});
