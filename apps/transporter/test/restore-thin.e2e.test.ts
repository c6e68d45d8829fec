/**
 * Thin stays thin (issue #14): a new-VM restore over the network creates the VM through an import lease and
 * uploads each disk as a streamOptimized VMDK made from the repository (holes and zero grains not sent), so
 * the restored disk holds blocks only where the source had data. Against the lab vCenter (real vcsim with the
 * lab's import-lease upload) and a real repository. Also: a cancelled upload aborts the lease and removes the
 * half-made VM; the sweep removes the VM of a Transporter killed mid-import; a disk written into an existing
 * VM is still written in full, and its log says so.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { restoreDisk, restoreVm } from '@vaultline/core';
import { memoryLogger } from '@vaultline/logger';
import { Repository } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import type { RestoreClientSession } from '../src/adapters/vsphere-port.ts';
import { sweepOrphans } from '../src/sweep.ts';
import { startBench, type Bench, type BenchPoint } from './fixture.ts';

const MiB = 1024 * 1024;

describe('a network restore of a thin disk stays thin (import lease, lab vCenter, real repository)', () => {
  let b: Bench;
  let session: RestoreClientSession;
  let repo: Repository;
  let point: BenchPoint;

  beforeAll(async () => {
    b = await startBench();
    session = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
    // Thin disks with real data here and there and holes everywhere else (an area ends mid-grain, one starts mid-block).
    await b.lab.createVm({ name: 'thin01', cbt: true, disks: [{ capacityBytes: 96 * MiB }, { capacityBytes: 24 * MiB, controller: 'lsilogic' }] });
    await b.lab.guestWrite('thin01', 0, [
      { offset: 0, length: 3 * MiB, pattern: 'random', seed: 141 },
      { offset: 20 * MiB, length: 5 * MiB, pattern: 'text', seed: 142 },
      { offset: 50 * MiB + 4096, length: 100_000, pattern: 'random', seed: 143 },
      { offset: 96 * MiB - 65536, length: 65536, pattern: 'text', seed: 144 },
    ]);
    await b.lab.guestWrite('thin01', 1, [{ offset: 7 * MiB, length: 2 * MiB, pattern: 'random', seed: 145 }]);
    point = await b.backupPoint('thin01', 2);
    repo = await Repository.open(b.repoDir);
  });
  afterAll(async () => {
    await repo?.close();
    await session?.close();
    await b?.close();
  });

  const journal = () => pgJournal(b.db, b.transporterId, b.journalKey);
  const deps = (lines: string[] = [], isCancelled?: () => boolean) => ({
    vsphere: session.port,
    journal: journal(),
    log: memoryLogger('r').log,
    devices: b.devices,
    proxy: session.facts,
    runLog: (_l: string, m: string) => void lines.push(m),
    ...(isCancelled ? { isCancelled } : {}),
  });
  const allocated = (file: string) => fs.statSync(file).blocks * 512;

  it('restores as a new VM over NBDSSL: every disk bit-exact, and each restored flat file allocates within 5 % of the source flat file', async () => {
    const lines: string[] = [];
    const name = 'thin01-restored';
    const r = await restoreVm({ repo, ref: { vmId: point.vmId, id: point.id }, name, restoreId: randomUUID(), transport: 'nbdssl', vcenterId: b.vcenterId }, deps(lines));
    expect(r.disks.map((d) => d.transport)).toEqual(['nbdssl', 'nbdssl']);
    expect(r.disks.map((d) => d.sha256)).toEqual(point.truth);
    expect(await b.lab.diskSha256(name, 0)).toBe(point.truth[0]);
    expect(await b.lab.diskSha256(name, 1)).toBe(point.truth[1]);

    const source = await b.lab.getVm('thin01');
    const restored = await b.lab.getVm(name);
    for (const i of [0, 1]) {
      const src = allocated(source.disks[i]!.flatPath);
      const got = allocated(restored.disks[i]!.flatPath);
      expect(src).toBeGreaterThan(0);
      expect(Math.abs(got - src) / src, `disk ${i}: restored ${got} bytes allocated, source ${src}`).toBeLessThanOrEqual(0.05);
      expect(got).toBeLessThan(restored.disks[i]!.capacityBytes / 4);
    }
    expect(r.disks[0]!.bytesWritten).toBe(3 * MiB + 5 * MiB + 2 * 65536 + 65536);
    expect(r.disks[0]!.bytesSkipped).toBe(96 * MiB - r.disks[0]!.bytesWritten);
    expect(lines).toContain(`creating VM ${name} through an import lease (its disks are uploaded over NBDSSL as thin disks): ${lines.find((l) => l.startsWith(`creating VM ${name}`))!.split(': ').slice(1).join(': ')}`);
    expect(lines.some((l) => /^disk Hard disk 1: wrote 8 MiB of 96 MiB as a thin disk through an import lease \(\d[\d,]* (KiB|MiB) sent as a streamOptimized VMDK over NBDSSL; 88 MiB of holes and zeros not written\)/.test(l)), lines.join('\n')).toBe(true);
    expect(lines.some((l) => l.startsWith(`import lease of ${name} completed: 2 disk(s) uploaded`))).toBe(true);
    expect(lines.filter((l) => /read back and verified SHA-256/.test(l))).toHaveLength(2);
    expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
  });

  it('as the restore job (transport nbdssl): RunDisk rows count only the data written and the run log says the disks were written thin through an import lease', async () => {
    const name = 'thin01-job';
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: point.rowId, name, transport: 'nbdssl' });
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: { orderBy: { label: 'asc' } } } } } });
    expect(done.status, done.error ?? '').toBe('succeeded');
    const item = done.vms[0]!;
    expect(item.disks.map((d) => [d.label, d.transport, d.phase, d.bytesWritten, d.capacityBytes])).toEqual([
      ['Hard disk 1', 'nbdssl', 'done', BigInt(8 * MiB + 3 * 65536), BigInt(96 * MiB)],
      ['Hard disk 2', 'nbdssl', 'done', BigInt(2 * MiB), BigInt(24 * MiB)],
    ]);
    const log = (item.log as { message: string }[]).map((l) => l.message);
    expect(log.filter((l) => l.includes('as a thin disk through an import lease'))).toHaveLength(2);
    expect(await b.lab.diskSha256(name, 0)).toBe(point.truth[0]);
    expect(await b.lab.diskSha256(name, 1)).toBe(point.truth[1]);
  });

  it('a restore cancelled during the upload aborts the import lease and removes the half-made VM', async () => {
    const lines: string[] = [];
    const name = 'thin01-cancelled';
    let reads = 0;
    const err = await restoreVm(
      { repo, ref: { vmId: point.vmId, id: point.id }, name, restoreId: randomUUID(), transport: 'nbdssl', vcenterId: b.vcenterId },
      // Cancelled once the first disk's upload has started (the engine checks between reads).
      deps(lines, () => lines.some((l) => l.includes('through an import lease')) && ++reads > 3),
    ).catch((e: unknown) => e);
    expect((err as Error).name, String(err)).toBe('CancelledError');
    expect(lines).toContain(`aborted the import lease of ${name}`);
    expect(lines.some((l) => l.startsWith(`removed the half-restored VM ${name}`))).toBe(true);
    expect((await session.client.inventory.vms()).map((v) => v.name)).not.toContain(name);
    expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
  });

  it('the sweep removes the VM of a Transporter killed in the middle of an import, through its journal row and marker', async () => {
    const restoreId = randomUUID();
    const name = 'thin01-killed';
    const j = journal();
    const hw = ((await repo.readManifest({ vmId: point.vmId, id: point.id })).vm as { hardware: Parameters<NonNullable<typeof session.port.importVm>>[0] }).hardware;
    const source = await session.client.inventory.vm((await b.lab.getVm('thin01')).moref);
    const placement = await session.client.vms.placement(source.moref);
    // What a killed restore leaves: the journal row naming the VM, and the imported VM with its lease never completed.
    const jid = await j.add('restore_vm', { restoreId, name, vm: null }, { vcenterId: b.vcenterId });
    const imp = await session.port.importVm!(hw, { name, restoreId, folder: placement.folder!, resourcePool: placement.resourcePool!, datastore: b.lab.datastores[0]!.name, networkMap: {} });
    await j.update(jid, { restoreId, name, vm: imp.vmMoref });
    const report = await sweepOrphans({
      journal: j,
      vsphere: (id) => b.connector.portFor(id),
      vcenterIds: async () => [b.vcenterId],
      devices: b.devices,
      proxyVm: (id) => b.connector.proxyVm(id),
      activeRunVmIds: () => new Set(),
      log: memoryLogger('s').log,
    });
    expect(report.restoredVmsRemoved).toEqual([name]);
    expect(report.failures).toEqual([]);
    expect((await session.client.inventory.vms()).map((v) => v.name)).not.toContain(name);
    await imp.abort().catch(() => undefined);
  });

  it('a disk restored into an existing VM keeps the full write, and its log says the disk was written in full', async () => {
    const target = await b.lab.createVm({ name: 'thin-target01', disks: [{ capacityBytes: 4 * MiB }] });
    const lines: string[] = [];
    const key = String((await b.lab.getVm('thin01')).disks[1]!.key);
    const r = await restoreDisk(
      { repo, ref: { vmId: point.vmId, id: point.id }, diskKey: key, targetVm: target.moref },
      { vsphere: session.port, journal: journal(), log: memoryLogger('d').log, runLog: (_l, m) => void lines.push(m) },
    );
    expect(r.sha256).toBe(point.truth[1]);
    expect(r.bytesWritten).toBe(24 * MiB);
    expect(lines.some((l) => l.startsWith('disk disk ' + key + ': wrote 24 MiB of 24 MiB in full (every byte, zeros included: the disk is allocated whole) over NBDSSL')), lines.join('\n')).toBe(true);
  });
});
