import { execFileSync } from 'node:child_process';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { Repository, verify } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

async function lastItem(b: Bench, runId: string) {
  const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: true } } } });
  return { run, vm: run.vms[0]!, point: await b.db.restorePoint.findFirst({ where: { runVmId: run.vms[0]!.id } }) };
}

async function leftovers(b: Bench) {
  const port = await b.connector.portFor(b.vcenterId);
  const proxy = await b.lab.getVm(b.lab.proxyVm.name);
  return {
    snapshots: await port.findTaggedSnapshots(),
    foreignDisks: proxy.disks.filter((d) => !d.fileName.includes(b.lab.proxyVm.name)).map((d) => d.fileName),
    journal: await b.db.cleanupEntry.count({ where: { resolvedAt: null } }),
  };
}

describe('bad input during a backup ends in a clear per-VM status and leaves nothing behind', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await startBench({ passphrase: 'the right passphrase' });
    await b.lab.createVm({ name: 'victim', cbt: true, disks: [{ capacityBytes: 32 * MiB }] });
    await b.lab.guestWrite('victim', 0, [{ offset: 0, length: 24 * MiB, pattern: 'random', seed: 31 }]);
  });
  afterAll(async () => {
    await b?.close();
  });

  it('a wrong repository passphrase fails the VM before any snapshot, naming the cause', async () => {
    const good = await b.db.repository.findUniqueOrThrow({ where: { id: b.repositoryId } });
    await b.db.repository.update({ where: { id: b.repositoryId }, data: { passphraseSealed: sealSecret(b.secretKey, SECRET_LABELS.repositoryPassphrase, 'not the passphrase') } });
    try {
      const { runId } = await b.newRun(['victim'], 'nbdssl');
      await b.runAll(runId);
      const { run, vm, point } = await lastItem(b, runId);
      expect(run.status).toBe('failed');
      expect(vm.error).toMatch(/repository bench cannot be opened: wrong passphrase/);
      expect(point).toBeNull();
      expect(await leftovers(b)).toEqual({ snapshots: [], foreignDisks: [], journal: 0 });
    } finally {
      await b.db.repository.update({ where: { id: b.repositoryId }, data: { passphraseSealed: good.passphraseSealed } });
    }
  });

  it('a changeId CBT rejects falls back to a full read of allocated areas, says so, and stays bit-exact', async () => {
    const first = await b.newRun(['victim'], 'nbdssl');
    await b.runAll(first.runId);
    expect((await lastItem(b, first.runId)).run.status).toMatch(/succeeded|warning/);
    const point = (await lastItem(b, first.runId)).point!;
    const keys = Object.keys(point.changeIds as Record<string, string>);
    // A changeId from another disk's history: the lab rejects it with InvalidArgument, as ESXi does after a CBT reset.
    await b.db.restorePoint.update({ where: { id: point.id }, data: { changeIds: Object.fromEntries(keys.map((k) => [k, '52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/77'])) } });
    await b.lab.guestWrite('victim', 0, [{ offset: 30 * MiB, length: 1 * MiB, pattern: 'text', seed: 32 }]);
    const truth = await b.lab.diskSha256('victim', 0);
    const second = await b.newRun(['victim'], 'nbdssl');
    await b.runAll(second.runId);
    const { run, vm, point: p2 } = await lastItem(b, second.runId);
    expect(run.status).toBe('warning');
    expect(JSON.stringify(vm.log)).toMatch(/CBT rejected changeId .*reading all allocated areas/);
    const lvm = await b.lab.getVm('victim');
    expect(await b.restoredSha256(p2!.repoPointId, p2!.vmInstanceUuid, String(lvm.disks[0]!.key))).toBe(truth);
    expect(await leftovers(b)).toEqual({ snapshots: [], foreignDisks: [], journal: 0 });
  });

  it('a disk file that vanished from the datastore fails the VM clearly and removes the snapshot (fake: file deleted behind vCenter)', async () => {
    await b.lab.createVm({ name: 'lost', cbt: true, disks: [{ capacityBytes: 8 * MiB }] });
    await b.lab.guestWrite('lost', 0, [{ offset: 0, length: 2 * MiB, pattern: 'random', seed: 33 }]);
    const disk = (await b.lab.getVm('lost')).disks[0]!;
    const { runId } = await b.newRun(['lost'], 'nbdssl');
    // The storage loses the file after the VM was chosen.
    await rename(disk.flatPath, `${disk.flatPath}.gone`);
    try {
      await b.runAll(runId);
      const { run, vm, point } = await lastItem(b, runId);
      expect(run.status).toBe('failed');
      expect(vm.error).toMatch(/^disk Hard disk 1 \(nbdssl\): .*lost-flat\.vmdk.*not found/);
      expect(point).toBeNull();
      expect(await leftovers(b)).toEqual({ snapshots: [], foreignDisks: [], journal: 0 });
    } finally {
      await rename(`${disk.flatPath}.gone`, disk.flatPath).catch(() => undefined);
    }
  });
});

describe.runIf(isRoot)('a full repository', () => {
  let b: Bench;
  let small: string;
  beforeAll(async () => {
    b = await startBench();
    small = await mkdtemp(path.join(os.tmpdir(), 'vaultline-small-repo-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', small]);
    await Repository.init(small);
    await b.db.repository.update({ where: { id: b.repositoryId }, data: { location: small, encrypted: false, passphraseSealed: null } });
    await b.lab.createVm({ name: 'big', cbt: true, disks: [{ capacityBytes: 32 * MiB }] });
    await b.lab.guestWrite('big', 0, [{ offset: 0, length: 24 * MiB, pattern: 'random', seed: 41 }]);
  });
  afterAll(async () => {
    await b?.close();
    if (small) {
      execFileSync('umount', [small]);
      await rm(small, { recursive: true, force: true });
    }
  });

  it('fails the VM with a clear message, leaves no restore point, and the repository still verifies clean', async () => {
    const { runId } = await b.newRun(['big'], 'nbdssl');
    await b.runAll(runId);
    const { run, vm, point } = await lastItem(b, runId);
    expect(run.status).toBe('failed');
    expect(vm.error).toMatch(/^disk Hard disk 1 \(nbdssl\): no space left on the repository storage/);
    expect(point).toBeNull();
    expect(await leftovers(b)).toEqual({ snapshots: [], foreignDisks: [], journal: 0 });
    const repo = await Repository.open(small);
    try {
      expect(await repo.listRestorePoints()).toEqual([]);
      const report = await verify(repo);
      expect(report.ok, JSON.stringify(report)).toBe(true);
    } finally {
      await repo.close();
    }
  });
});
