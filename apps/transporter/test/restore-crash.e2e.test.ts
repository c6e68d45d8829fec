/**
 * kill -9 of a real Transporter process in the middle of a restore, then a
 * new Transporter (same identity) starts: its sweep must leave no
 * half-created VM registered and no disk on the proxy VM, the journal must be
 * clean, and the restore — taken over from the queue — must succeed bit-exact.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WorkQueue } from '@vaultline/queue';
import { VSphereClient } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, spawnTransporter, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe.runIf(isRoot)('kill -9 of the Transporter mid-restore leaves nothing behind after restart', () => {
  let b: Bench;
  let dataDir: string;
  let queue: WorkQueue;
  let pointRowId: string;
  let truth: string[];
  let client: VSphereClient;
  const namespace = `rcrash-${randomUUID().slice(0, 8)}`;
  const children: ChildProcess[] = [];

  const startTransporter = () => {
    const child = spawnTransporter(b, { namespace, dataDir, redisUrl: REDIS_URL });
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    b = await startBench();
    client = await VSphereClient.connect({ url: b.lab.url, username: b.lab.username, password: b.lab.password, thumbprintSha256: b.lab.thumbprintSha256, keepAliveMs: 0 });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-rcrash-'));
    queue = new WorkQueue({ redisUrl: REDIS_URL, namespace });
    await b.lab.createVm({ name: 'ledger', cbt: true, disks: [{ capacityBytes: 160 * MiB }, { capacityBytes: 96 * MiB }] });
    await b.lab.guestWrite('ledger', 0, [{ offset: 0, length: 128 * MiB, pattern: 'random', seed: 51 }]);
    await b.lab.guestWrite('ledger', 1, [{ offset: 16 * MiB, length: 64 * MiB, pattern: 'random', seed: 52 }]);
    truth = [await b.lab.diskSha256('ledger', 0), await b.lab.diskSha256('ledger', 1)];
    const { runId } = await b.newRun(['ledger'], 'nbdssl');
    await b.runAll(runId);
    const item = await b.db.runVm.findFirstOrThrow({ where: { runId } });
    pointRowId = (await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: item.id } })).id;
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await queue?.obliterate().catch(() => undefined);
    await queue?.close();
    await client?.close();
    await b?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const unresolved = (kind: 'restore_vm' | 'disk_attach') => b.db.cleanupEntry.findMany({ where: { kind, resolvedAt: null } });
  const points: { name: string; reached: (runVmId: string) => Promise<boolean> }[] = [
    { name: 'after the VM was created', reached: async () => (await unresolved('restore_vm')).some((r) => (r.target as { vm: string | null }).vm !== null) },
    {
      name: 'mid-write with the disk hot-added',
      reached: async (runVmId) =>
        (await unresolved('disk_attach')).some((r) => (r.target as { deviceKey: number | null }).deviceKey !== null) &&
        (await b.db.runDisk.findMany({ where: { runVmId } })).some((d) => d.transport === 'hotadd' && d.phase === 'writing' && d.bytesWritten > 0n),
    },
  ];

  for (const [i, point] of points.entries()) {
    it(`killed ${point.name}`, async () => {
      const name = `ledger-restored-${i}`;
      const vmsBefore = await listVms();
      const { runId, runVmId } = await b.newRestoreRun({ restorePointId: pointRowId, name, transport: 'hotadd' });
      const first = startTransporter();
      await queue.enqueueRestore({ runVmId });
      let killed = false;
      let seen = '';
      const deadline = Date.now() + 180_000;
      while (!killed && Date.now() < deadline) {
        const vm = await b.db.runVm.findUniqueOrThrow({ where: { id: runVmId } });
        seen = `${vm.status}/${vm.phase} ${vm.error ?? ''}`;
        if (await point.reached(runVmId)) {
          first.kill('SIGKILL');
          killed = true;
        } else if (['succeeded', 'warning', 'failed', 'cancelled'].includes(vm.status)) break;
        else await new Promise((r) => setTimeout(r, 5));
      }
      expect(killed, `the restore never reached "${point.name}" (last seen ${seen})`).toBe(true);
      await new Promise((r) => first.once('exit', r));
      const leftVm = (await unresolved('restore_vm')).map((r) => (r.target as { vm: string | null }).vm).find(Boolean);
      expect(leftVm, 'the killed restore left its VM (and its journal row)').toBeTruthy();

      // A new Transporter sweeps before taking work, then takes the stalled restore over and finishes it.
      const second = startTransporter();
      let status = '';
      for (let t = 0; t < 900; t++) {
        status = (await b.db.jobRun.findUniqueOrThrow({ where: { id: runId } })).status;
        if (['succeeded', 'warning', 'failed', 'cancelled'].includes(status)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const item = await b.db.runVm.findUniqueOrThrow({ where: { id: runVmId } });
      expect(status, `${item.error} ${JSON.stringify(item.log)}`).toBe('succeeded');
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));

      // No half-created VM: the killed attempt's VM is gone; the only new VM is the finished restore's.
      const vmsAfter = await listVms();
      expect(vmsAfter.some((v) => v.moref === leftVm), `the killed attempt's VM ${leftVm} is still registered`).toBe(false);
      expect(vmsAfter.filter((v) => !vmsBefore.some((o) => o.moref === v.moref)).map((v) => v.name)).toEqual([name]);
      expect(item.vmMoref).toBe(vmsAfter.find((v) => v.name === name)!.moref);
      const proxyDisks = (await b.lab.getVm(b.lab.proxyVm.name)).disks.map((d) => d.fileName);
      expect(proxyDisks.filter((f) => !f.includes(b.lab.proxyVm.name)), 'foreign disks on the proxy VM').toEqual([]);
      expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
      const takeovers = (item.log as { message: string }[]).filter((l) => l.message.startsWith('taken over by Transporter '));
      expect(takeovers, JSON.stringify(item.log)).toHaveLength(1);
      expect(takeovers[0]!.message).toContain('from an earlier process of this same Transporter, which stopped at ');
      expect(takeovers[0]!.message).toContain('what it left in vSphere (the half-restored VM, attached disks) was removed by the sweep this Transporter ran when it started');
      expect(takeovers[0]!.message).toMatch(/this attempt restores again from the start$/);
      // Killed once bytes were written (the kill point waits for them): the log says how many.
      if (i === 1) expect(takeovers[0]!.message).toMatch(/; it had written \d+\.\d (MiB|GiB) of /);
      expect(await b.lab.diskSha256(name, 0)).toBe(truth[0]);
      expect(await b.lab.diskSha256(name, 1)).toBe(truth[1]);
    });
  }

  async function listVms(): Promise<{ moref: string; name: string }[]> {
    return (await client.inventory.vms()).map((v) => ({ moref: v.moref, name: v.name }));
  }
});
