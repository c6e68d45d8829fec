/**
 * Restore refusals, failures, cancel and replace against the lab vCenter:
 * every bad input gets a clear error and leaves nothing half-done (no new VM,
 * no disk on the proxy, no unresolved journal row, no hot-added device), and a
 * replace only ever powers off and renames the original, after the restored VM
 * was verified.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RestoreRequestSchema } from '@vaultline/contracts';
import { DamagedPointError, restoreVm, RestoreError, SAN_WRITE_REASON, type RestoreVmInput } from '@vaultline/core';
import { memoryLogger } from '@vaultline/logger';
import { Repository } from '@vaultline/repository';
import { createSpecFromHardware, type HardwareDescription, type VSphereClient } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import type { RestoreClientSession } from '../src/adapters/vsphere-port.ts';
import { sweepOrphans } from '../src/sweep.ts';
import { isRoot, startBench, type Bench, type BenchPoint } from './fixture.ts';

const MiB = 1024 * 1024;

describe.runIf(isRoot)('restore refusals, cancel and replace leave nothing half-done (lab vCenter)', () => {
  let b: Bench;
  let session: RestoreClientSession;
  let client: VSphereClient;
  let repo: Repository;
  let point: BenchPoint;

  beforeAll(async () => {
    b = await startBench({ lab: { extraDatastores: [{ name: 'tiny', sizeBytes: 4 * MiB }] } });
    session = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
    client = session.client;
    await b.lab.createVm({ name: 'crm01', cbt: true, powerOn: true, nics: ['VM Network'], disks: [{ capacityBytes: 24 * MiB }, { capacityBytes: 8 * MiB }] });
    await b.lab.guestWrite('crm01', 0, [{ offset: 0, length: 16 * MiB, pattern: 'random', seed: 41 }]);
    await b.lab.guestWrite('crm01', 1, [{ offset: 2 * MiB, length: 4 * MiB, pattern: 'text', seed: 42 }]);
    point = await b.backupPoint('crm01', 2);
    // The VM moves on after its backup: a restore must bring back the point, a replace must keep this.
    await b.lab.guestWrite('crm01', 0, [{ offset: 20 * MiB, length: 1 * MiB, pattern: 'random', seed: 43 }]);
    repo = await Repository.open(b.repoDir);
  });
  afterAll(async () => {
    await repo?.close();
    await session?.close();
    await b?.close();
  });

  const journal = () => pgJournal(b.db, b.transporterId, b.journalKey);
  const input = (over: Partial<RestoreVmInput> = {}): RestoreVmInput => ({ repo, ref: { vmId: point.vmId, id: point.id }, name: 'crm01-copy', restoreId: randomUUID(), vcenterId: b.vcenterId, ...over });
  const deps = (lines: string[] = []) => ({ vsphere: session.port, journal: journal(), log: memoryLogger('r').log, devices: b.devices, proxy: session.facts, runLog: (_l: string, m: string) => void lines.push(m) });

  /** VMs, disks on the proxy, unresolved journal rows and hot-added devices: what a restore could leave. */
  const state = async () => ({
    vms: (await client.inventory.vms()).map((v) => `${v.moref}=${v.name}`).sort(),
    proxyDisks: (await b.lab.getVm(b.lab.proxyVm.name)).disks.map((d) => d.fileName).filter((f) => !f.includes(b.lab.proxyVm.name)),
    journal: await b.db.cleanupEntry.count({ where: { resolvedAt: null } }),
    devices: fs.readdirSync(b.lab.byIdDir).filter((n) => !b.lab.datastores.some((d) => d.naa && n.endsWith(d.naa.slice(4)))),
  });
  const expectNothingLeft = async (before: Awaited<ReturnType<typeof state>>) => {
    expect(await state()).toEqual({ ...before, proxyDisks: [], journal: 0, devices: [] });
  };

  it('a name in use is refused without replace, saying how to replace; nothing is created', async () => {
    const before = await state();
    const err = await restoreVm(input({ name: 'crm01' }), deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as Error).message).toBe('a VM named crm01 already exists; choose another name, or replace it by sending replace: { confirm: "crm01" } (the original is then kept, powered off and renamed)');
    await expectNothingLeft(before);
  });

  it('a replace whose confirmation is not the exact name is refused by the request schema and by the Transporter; the original is untouched', async () => {
    const before = await state();
    const parsed = RestoreRequestSchema.safeParse({ restorePointId: point.rowId, name: 'crm01', replace: { confirm: 'CRM01' } });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues).toEqual([expect.objectContaining({ path: ['replace', 'confirm'], message: 'to replace a VM, confirm with its exact name (crm01)' })]);
    const err = await restoreVm(input({ name: 'crm01', replace: { confirm: 'CRM01' } }), deps()).catch((e: unknown) => e);
    expect((err as Error).message).toBe('replace.confirm is "CRM01", not the exact name of the VM to replace ("crm01"); nothing was done');
    // A stored request that does not parse fails the run with the reason, before vSphere is touched.
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: point.rowId, name: 'crm01', replace: { confirm: 'crm' } });
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId } });
    expect(run.status).toBe('failed');
    expect(run.error).toBe('the restore request is not valid: replace.confirm: to replace a VM, confirm with its exact name (crm01)');
    const nothing = await restoreVm(input({ name: 'no-such-vm', replace: { confirm: 'no-such-vm' } }), deps()).catch((e: unknown) => e);
    expect((nothing as Error).message).toBe('there is no VM named no-such-vm to replace; nothing was done');
    const orig = await b.lab.getVm('crm01');
    expect(orig.powerState).toBe('poweredOn');
    await expectNothingLeft(before);
  });

  it('a datastore too small for the disks is refused before anything is created', async () => {
    const before = await state();
    const err = await restoreVm(input({ placement: { datastore: 'tiny' } }), deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as Error).message).toMatch(/^datastore tiny has [34] MiB free; the disks need 32 MiB\. Nothing was created\.$/);
    await expectNothingLeft(before);
  });

  it('an unknown host, folder, resource pool or network is named in one error; nothing is created', async () => {
    const before = await state();
    const err = await restoreVm(
      input({ placement: { host: 'esx-99', folder: 'vm/Nowhere', resourcePool: 'Gold', datastore: 'datastore9', networkMap: { 'VM Network': 'DMZ', 'Backup Net': 'VM Network' } } }),
      deps(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    const m = (err as Error).message;
    expect(m).toMatch(/^cannot place the restored VM: /);
    expect(m).toContain('host "esx-99" does not exist (there are: DC0_C0_H0, DC0_C0_H1)');
    expect(m).toContain('resource pool "Gold" does not exist (there is: Resources)');
    expect(m).toContain('VM folder "vm/Nowhere" does not exist');
    expect(m).toContain('datastore "datastore9" does not exist (there are: datastore1, datastore2, tiny)');
    expect(m).toContain('network "DMZ" (the target of "VM Network") does not exist');
    expect(m).toContain('the VM in the restore point has no NIC on network "Backup Net" (its NICs are on: VM Network)');
    expect(m).toMatch(/Nothing was created\.$/);
    const onlyNet = await restoreVm(input({ placement: { networkMap: { 'VM Network': 'DMZ' } } }), deps()).catch((e: unknown) => e);
    expect((onlyNet as Error).message).toMatch(/^cannot place the restored VM: network "DMZ" \(the target of "VM Network"\) does not exist \(there are: DC0_DVPG0, .*VM Network\)\. Nothing was created\.$/);
    await expectNothingLeft(before);
  });

  it('a manual SAN restore is refused before anything is created, saying why', async () => {
    const before = await state();
    const err = await restoreVm(input({ transport: 'san' }), deps()).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`disk Hard disk 1: ${SAN_WRITE_REASON}; choose automatic, hotadd, nbdssl or nbd. Nothing was created.`);
    await expectNothingLeft(before);
  });

  it('manual HotAdd where it cannot work: refused without failover, over the network with the reason when failover is allowed', async () => {
    const before = await state();
    const noProxy = { ...deps(), proxy: { proxyVm: null, proxyVmUuid: '4210aaaa-0000-0000-0000-000000000000' } };
    const err = await restoreVm(input({ transport: 'hotadd', failoverToNetwork: false }), noProxy).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      'disk Hard disk 1: HotAdd: no VM with BIOS UUID 4210aaaa-0000-0000-0000-000000000000 (this Transporter\'s VM) in this vCenter (transport is manual: hotadd, and failover to the network is off). Nothing was created.',
    );
    await expectNothingLeft(before);
    const r = await restoreVm(input({ name: 'crm01-failover', transport: 'hotadd' }), noProxy);
    expect(r.disks.map((d) => d.transport)).toEqual(['nbdssl', 'nbdssl']);
    expect(r.disks[0]!.reasons).toEqual([
      "HOTADD: chosen manually, but HotAdd: no VM with BIOS UUID 4210aaaa-0000-0000-0000-000000000000 (this Transporter's VM) in this vCenter",
      "NBDSSL: write over the datastore's HTTPS interface instead (failover to the network is allowed)",
    ]);
    expect(r.disks.map((d) => d.sha256)).toEqual(point.truth);
  });

  it('a HotAdd that fails on a disk (fake device layer: the device never opens) is detached and that disk goes over the network, saying why', async () => {
    const before = await state();
    const lines: string[] = [];
    const failing = { ...b.devices, openHotAddedForWrite: async () => Promise.reject(new Error('fake: the hot-added disk did not appear')) };
    const r = await restoreVm(input({ name: 'crm01-hotadd-fails', transport: 'hotadd' }), { ...deps(lines), devices: failing });
    expect(r.disks.map((d) => d.transport)).toEqual(['nbdssl', 'nbdssl']);
    expect(r.disks[0]!.reasons).toEqual(['HOTADD: chosen manually', 'HotAdd failed: fake: the hot-added disk did not appear; failover to NBDSSL']);
    expect(r.disks.map((d) => d.sha256)).toEqual(point.truth);
    expect(lines.filter((l) => l.includes('detached from vaultline-proxy'))).toHaveLength(2);
    expect(await b.lab.diskSha256('crm01-hotadd-fails', 0)).toBe(point.truth[0]);
    const after = await state();
    expect(after.proxyDisks).toEqual([]);
    expect(after.journal).toBe(before.journal);
  });

  it('a damaged restore point fails the HotAdd restore clearly: the disk is detached and no half-created VM is left', async () => {
    const before = await state();
    const packsDir = path.join(b.repoDir, 'packs');
    const saved: { file: string; data: Buffer }[] = [];
    for (const sub of await readdir(packsDir)) {
      for (const f of await readdir(path.join(packsDir, sub))) {
        const file = path.join(packsDir, sub, f);
        const data = await readFile(file);
        saved.push({ file, data });
        const bad = Buffer.from(data);
        for (let i = 0; i < Math.min(bad.length, 4096); i++) bad[i]! ^= 0xff;
        await writeFile(file, bad);
      }
    }
    try {
      const fresh = await Repository.open(b.repoDir);
      const lines: string[] = [];
      const err = await restoreVm({ ...input({ name: 'crm01-from-damage', transport: 'hotadd' }), repo: fresh }, deps(lines)).catch((e: unknown) => e);
      await fresh.close();
      expect(err).toBeInstanceOf(DamagedPointError);
      expect((err as Error).message).toMatch(new RegExp(`^restore point ${point.id} is damaged: .*; run a repository verify$`));
      expect(lines).toContain('disk Hard disk 1: detached from vaultline-proxy');
      expect(lines.some((l) => /^removed the half-restored VM crm01-from-damage$/.test(l))).toBe(true);
      await expectNothingLeft(before);
    } finally {
      for (const s of saved) await writeFile(s.file, s.data);
    }
  });

  it('cancel mid-write (from the progress event itself): the run ends cancelled, the disk is detached and the half-created VM removed', async () => {
    const before = await state();
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: point.rowId, name: 'crm01-cancelled', transport: 'hotadd' });
    b.onEvent = (e) => {
      if (e.type === 'disk.progress' && e.runId === runId && e.phase === 'writing' && (e.bytesWritten as number) > 0) b.cancelled.add(runId);
    };
    try {
      await b.restoreHandler({ runVmId }, { attempt: 1 });
    } finally {
      b.onEvent = null;
    }
    const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: true } } } });
    expect(run.status).toBe('cancelled');
    expect(run.vms[0]!.disks.map((d) => d.phase)).toEqual(['cancelled']);
    const log = (run.vms[0]!.log as { message: string }[]).map((l) => l.message);
    expect(log).toContain('disk Hard disk 1: detached from vaultline-proxy');
    expect(log).toContain('cancelled: every attached disk was detached and the half-created VM removed');
    await expectNothingLeft(before);
  });

  it('replace, confirmed: restored under a temporary name and verified, then the original is powered off and kept under a new name with its disks untouched, and the restored VM takes the name', async () => {
    const original = await b.lab.getVm('crm01');
    const originalSha = [await b.lab.diskSha256('crm01', 0), await b.lab.diskSha256('crm01', 1)];
    expect(originalSha[0]).not.toBe(point.truth[0]); // it moved on after the backup
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: point.rowId, name: 'crm01', replace: { confirm: 'crm01' }, powerOn: true, transport: 'hotadd' });
    const started = new Date();
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: true } });
    expect(run.status, run.error ?? '').toBe('succeeded');

    const now = await b.lab.getVm('crm01');
    expect(now.moref).not.toBe(original.moref);
    expect(now.moref).toBe(run.vms[0]!.vmMoref);
    expect(now.powerState).toBe('poweredOn');
    expect(await b.lab.diskSha256('crm01', 0)).toBe(point.truth[0]);
    expect(await b.lab.diskSha256('crm01', 1)).toBe(point.truth[1]);

    const kept = (await client.inventory.vms()).find((v) => v.moref === original.moref)!;
    const p = (n: number) => String(n).padStart(2, '0');
    const stamps = [started, new Date()].map((d) => `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}`);
    expect(stamps.map((s) => `crm01-replaced-${s}`)).toContain(kept.name);
    expect(kept.powerState).toBe('poweredOff');
    expect(await b.lab.diskSha256(kept.name, 0)).toBe(originalSha[0]);
    expect(await b.lab.diskSha256(kept.name, 1)).toBe(originalSha[1]);
    expect(await client.vms.restoreIdOf(original.moref)).toBeUndefined();

    const log = (run.vms[0]!.log as { message: string }[]).map((l) => l.message);
    const tmp = log.find((l) => l.startsWith('created VM crm01-restoring-'))!;
    expect(tmp).toBeDefined();
    const order = [tmp, 'verified SHA-256', 'powered off the original VM crm01', `renamed the original VM crm01 to ${kept.name}`, 'renamed the restored VM crm01-restoring-', 'powered on crm01'];
    const at = order.map((o) => log.findIndex((l) => l.includes(o)));
    expect(at.every((i) => i >= 0), JSON.stringify(log)).toBe(true);
    expect([...at].sort((x, y) => x - y)).toEqual(at);
    expect(log).toContain(`replaced: crm01 is the restored VM; the original is kept as ${kept.name}, powered off`);
    expect((await state()).journal).toBe(0);
  });

  it('an interrupted replace is rolled back by the sweep (the original gets its name back and runs again, the temporary VM goes); a completed one is left alone', async () => {
    const hw = ((await repo.readManifest({ vmId: point.vmId, id: point.id })).vm as { hardware: HardwareDescription }).hardware;
    const inv = await client.inventory.all();
    const place = { folder: inv.datacenters[0]!.vmFolder, resourcePool: inv.clusters[0]!.resourcePool!, datastore: 'datastore1' };
    const j = journal();
    const sweep = () =>
      sweepOrphans({
        journal: j,
        vsphere: (id) => b.connector.portFor(id),
        vcenterIds: async () => [b.vcenterId],
        devices: b.devices,
        proxyVm: (id) => b.connector.proxyVm(id),
        activeRunVmIds: () => new Set(),
        log: memoryLogger('s').log,
      });

    // Killed after the original was powered off and renamed, before the restored VM got the name.
    const orig = await b.lab.createVm({ name: 'app07', powerOn: true, disks: [{ capacityBytes: 1 * MiB }] });
    const restoreId = randomUUID();
    const temp = await client.vms.create(createSpecFromHardware(hw, { name: 'app07-restoring-1', restoreId, ...place }));
    await client.vms.powerOff(orig.moref);
    await client.vms.rename(orig.moref, 'app07-replaced-20260101-0000');
    await j.add(
      'restore_vm',
      { restoreId, name: 'app07-restoring-1', vm: temp, swap: { original: orig.moref, originalName: 'app07', renamedTo: 'app07-replaced-20260101-0000', wasPoweredOn: true, step: 'renaming restored' } },
      { vcenterId: b.vcenterId },
    );
    const report = await sweep();
    expect(report.failures).toEqual([]);
    expect(report.restoredVmsRemoved).toEqual(['app07-restoring-1']);
    const back = await client.inventory.vm(orig.moref);
    expect(back).toMatchObject({ name: 'app07', powerState: 'poweredOn' });
    expect((await client.inventory.vms()).some((v) => v.moref === temp)).toBe(false);

    // Killed after the last rename: the swap is done and the restored VM stays in service.
    const restoreId2 = randomUUID();
    const done = await client.vms.create(createSpecFromHardware(hw, { name: 'app08-restoring-2', restoreId: restoreId2, ...place }));
    const orig2 = await b.lab.createVm({ name: 'app08-old', disks: [{ capacityBytes: 1 * MiB }] });
    await client.vms.rename(done, 'app08');
    await j.add(
      'restore_vm',
      { restoreId: restoreId2, name: 'app08-restoring-2', vm: done, swap: { original: orig2.moref, originalName: 'app08', renamedTo: 'app08-old', wasPoweredOn: false, step: 'renaming restored' } },
      { vcenterId: b.vcenterId },
    );
    const report2 = await sweep();
    expect(report2.failures).toEqual([]);
    expect(report2.restoredVmsRemoved).toEqual([]);
    expect((await client.inventory.vm(done)).name).toBe('app08');
    expect((await client.inventory.vm(orig2.moref)).name).toBe('app08-old');
    expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
  });
});
