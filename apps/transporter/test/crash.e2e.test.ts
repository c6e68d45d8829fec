/**
 * kill -9 of a real Transporter process at several points of a backup, then a
 * new Transporter (same identity) starts: its sweep must leave no snapshot
 * with our tag and no foreign disk on the proxy VM, no partial restore point
 * may exist, and the retried run must succeed bit-exact, its log naming the
 * takeover.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Repository } from '@vaultline/repository';
import { WorkQueue } from '@vaultline/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, spawnTransporter, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe.runIf(isRoot)('kill -9 of the Transporter mid-backup leaves nothing behind after restart', () => {
  let b: Bench;
  let dataDir: string;
  let queue: WorkQueue;
  const namespace = `crash-${randomUUID().slice(0, 8)}`;
  const children: ChildProcess[] = [];

  const startTransporter = () => {
    const child = spawnTransporter(b, { namespace, dataDir, redisUrl: REDIS_URL });
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    b = await startBench();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-crash-'));
    queue = new WorkQueue({ redisUrl: REDIS_URL, namespace });
    await b.lab.createVm({ name: 'crashy', cbt: true, disks: [{ capacityBytes: 192 * MiB }, { capacityBytes: 96 * MiB }] });
    await b.lab.guestWrite('crashy', 0, [{ offset: 0, length: 160 * MiB, pattern: 'random', seed: 21 }]);
    await b.lab.guestWrite('crashy', 1, [{ offset: 8 * MiB, length: 64 * MiB, pattern: 'random', seed: 22 }]);
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await queue?.obliterate().catch(() => undefined);
    await queue?.close();
    await b?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const points: { name: string; reached: (vm: { phase: string }, disks: { phase: string; bytesRead: bigint; transport: string | null }[]) => boolean }[] = [
    { name: 'after the snapshot', reached: (vm) => vm.phase === 'copying' },
    { name: 'after the HotAdd attach', reached: (_vm, disks) => disks.some((d) => d.phase === 'reading' && d.transport === 'hotadd') },
    { name: 'mid-read', reached: (_vm, disks) => disks.some((d) => d.bytesRead > 0n) },
    { name: 'before the commit', reached: (vm) => vm.phase === 'removing snapshot' || vm.phase === 'committing' },
  ];

  let round = 0;
  for (const point of points) {
    it(`killed ${point.name}`, async () => {
      // New guest data each time, so every run (incrementals too) has something to copy.
      round += 1;
      await b.lab.guestWrite('crashy', 0, [{ offset: (round % 3) * 32 * MiB, length: 96 * MiB, pattern: 'random', seed: 100 + round }]);
      const truth = [await b.lab.diskSha256('crashy', 0), await b.lab.diskSha256('crashy', 1)];
      const { runId, items } = await b.newRun(['crashy'], 'hotadd', { cbtSanityRate: 0 });
      const item = items[0]!;
      const before = (await Repository.open(b.repoDir).then(async (r) => ((await r.listRestorePoints()).length + (await r.close(), 0)))) as number;
      const first = startTransporter();
      await queue.enqueueBackupVm({ runVmId: item.id });
      // Watch the run's rows and kill at the chosen point.
      let killed = false;
      let seen = '';
      const deadline = Date.now() + 180_000;
      while (!killed && Date.now() < deadline) {
        const vm = await b.db.runVm.findUniqueOrThrow({ where: { id: item.id }, include: { disks: true } });
        seen = `${vm.status}/${vm.phase} ${vm.error ?? ''}`;
        if (point.reached(vm, vm.disks)) {
          first.kill('SIGKILL');
          killed = true;
        } else if (['succeeded', 'warning', 'failed'].includes(vm.status)) break;
        else await new Promise((r) => setTimeout(r, 10));
      }
      expect(killed, `the run never reached "${point.name}" (last seen ${seen})`).toBe(true);
      await new Promise((r) => first.once('exit', r));

      // Nothing committed by the killed attempt.
      const repo = await Repository.open(b.repoDir);
      expect((await repo.listRestorePoints()).length).toBe(before);
      await repo.close();
      expect(await b.db.restorePoint.count({ where: { runVmId: item.id } })).toBe(0);

      // A new Transporter sweeps, then takes the stalled job over and finishes it.
      const second = startTransporter();
      let status = '';
      for (let i = 0; i < 600; i++) {
        status = (await b.db.jobRun.findUniqueOrThrow({ where: { id: runId } })).status;
        if (['succeeded', 'warning', 'failed', 'cancelled'].includes(status)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const vm = await b.db.runVm.findUniqueOrThrow({ where: { id: item.id } });
      expect(status, `${vm.error} ${JSON.stringify(vm.log)}`).toMatch(/succeeded|warning/);
      // The log names the takeover once, with what the killed attempt had read (progress starting over is not silent).
      const takeovers = (vm.log as { level: string; message: string }[]).filter((l) => l.message.startsWith('taken over by Transporter '));
      expect(takeovers, JSON.stringify(vm.log)).toHaveLength(1);
      expect(takeovers[0]!.level).toBe('warn');
      expect(takeovers[0]!.message).toContain('from an earlier process of this same Transporter, which stopped at ');
      expect(takeovers[0]!.message).toContain('was removed by the sweep this Transporter ran when it started');
      if (point.name === 'mid-read') expect(takeovers[0]!.message).toMatch(/; it had read \d+\.\d (MiB|GiB) of Hard disk \d/);
      expect(vm.transporterLostAt).toBeNull();
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));

      const port = await b.connector.portFor(b.vcenterId);
      expect(await port.findTaggedSnapshots(), 'snapshots with our tag').toEqual([]);
      const proxyDisks = (await b.lab.getVm(b.lab.proxyVm.name)).disks.map((d) => d.fileName);
      expect(proxyDisks.filter((f) => !f.includes(b.lab.proxyVm.name)), 'foreign disks on the proxy VM').toEqual([]);
      expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
      const pointRow = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: item.id } });
      const lvm = await b.lab.getVm('crashy');
      expect(await b.restoredSha256(pointRow.repoPointId, pointRow.vmInstanceUuid, String(lvm.disks[0]!.key))).toBe(truth[0]);
      expect(await b.restoredSha256(pointRow.repoPointId, pointRow.vmInstanceUuid, String(lvm.disks[1]!.key))).toBe(truth[1]);
    });
  }
});
