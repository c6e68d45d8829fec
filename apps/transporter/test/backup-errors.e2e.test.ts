import { execFileSync } from 'node:child_process';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SECRET_LABELS, identityColumns } from '@vaultline/appliance';
import { Prisma } from '@vaultline/db';
import { sealSecret } from '@vaultline/config';
import { PermanentError } from '@vaultline/queue';
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

  it('a wrong vCenter password fails the VM at its first attempt (retrying cannot help), naming the cause; an unreachable vCenter is retried', async () => {
    const good = await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } });
    try {
      await b.db.vCenter.update({ where: { id: b.vcenterId }, data: { passwordSealed: sealSecret(b.secretKey, SECRET_LABELS.vcenterPassword, 'not the password') } });
      const wrong = await b.newRun(['victim'], 'nbdssl');
      await expect(b.retryingHandler({ runVmId: wrong.items[0]!.id }, { attempt: 1 })).rejects.toThrow(PermanentError);
      const failed = await lastItem(b, wrong.runId);
      expect(failed.run.status).toBe('failed');
      expect(failed.vm.error).toMatch(/wrong user name or password/);
      expect(failed.vm.log).not.toContainEqual(expect.objectContaining({ message: expect.stringContaining('will retry') }));

      // Nothing listens on port 1: the next attempt may find vCenter back, so the queue is asked to retry.
      await b.db.vCenter.update({ where: { id: b.vcenterId }, data: { passwordSealed: good.passwordSealed, url: 'https://127.0.0.1:1/sdk' } });
      const away = await b.newRun(['victim'], 'nbdssl');
      const thrown = (await b.retryingHandler({ runVmId: away.items[0]!.id }, { attempt: 1 }).then(
        () => null,
        (e: unknown) => e,
      )) as Error | null;
      expect(thrown?.message).toMatch(/connection refused/);
      expect(thrown).not.toBeInstanceOf(PermanentError);
      const retrying = await lastItem(b, away.runId);
      expect(retrying.vm).toMatchObject({ status: 'running', phase: 'retrying' });
      await b.retryingHandler({ runVmId: away.items[0]!.id }, { attempt: 3 });
      expect((await lastItem(b, away.runId)).run.status).toBe('failed');
    } finally {
      await b.db.vCenter.update({ where: { id: b.vcenterId }, data: { passwordSealed: good.passwordSealed, url: good.url } });
    }
    expect(await leftovers(b)).toEqual({ snapshots: [], foreignDisks: [], journal: 0 });
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

  it('CBT sanity sampling catches a change CBT did not report, marks the point suspect, and the next backup re-reads everything (fake: write that bypasses CBT)', async () => {
    await b.lab.createVm({ name: 'cbtbug', cbt: true, disks: [{ capacityBytes: 4 * MiB }] });
    await b.lab.guestWrite('cbtbug', 0, [{ offset: 0, length: 4 * MiB, pattern: 'text', seed: 51 }]);
    const first = await b.newRun(['cbtbug'], 'nbdssl', { cbtSanityRate: 1 });
    await b.runAll(first.runId);
    expect((await lastItem(b, first.runId)).run.status).toMatch(/succeeded|warning/);
    // Bytes change on disk without the change log knowing: what VMware's CBT bugs look like to a backup.
    const disk = (await b.lab.getVm('cbtbug')).disks[0]!;
    const { open } = await import('node:fs/promises');
    const fh = await open(disk.flatPath, 'r+');
    await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 2 * MiB);
    await fh.close();
    const truth = await b.lab.diskSha256('cbtbug', 0);
    const second = await b.newRun(['cbtbug'], 'nbdssl', { cbtSanityRate: 1 });
    await b.runAll(second.runId);
    const s2 = await lastItem(b, second.runId);
    expect(s2.run.status).toBe('warning');
    expect(s2.point!.suspect).toBe(true);
    expect(JSON.stringify(s2.vm.log)).toMatch(/CBT called \[2097152, \+65536\) unchanged but it differs/);
    // Every block of this small disk was sampled, so the suspect point is still correct...
    const key = String(disk.key);
    expect(await b.restoredSha256(s2.point!.repoPointId, s2.point!.vmInstanceUuid, key)).toBe(truth);
    // ...and the next backup does not trust CBT: it reads all allocated areas again.
    const third = await b.newRun(['cbtbug'], 'nbdssl', { cbtSanityRate: 1 });
    await b.runAll(third.runId);
    const s3 = await lastItem(b, third.runId);
    expect(JSON.stringify(s3.vm.log)).toContain('the last restore point was suspect; reading all allocated areas');
    expect(Number(s3.vm.disks[0]!.bytesRead)).toBe(4 * MiB);
    expect(s3.point!.suspect).toBe(false);
  });

  it("quiesce failure: 'try' falls back to crash-consistent and says so, 'require' fails with nothing left (lab VM whose quiesced snapshots fail)", async () => {
    await b.lab.createVm({ name: 'sql', cbt: true, powerOn: true, disks: [{ capacityBytes: 4 * MiB }] });
    await b.lab.guestWrite('sql', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text', seed: 91 }]);
    await b.lab.failQuiesce('sql', true);
    const tried = await b.newRun(['sql'], 'nbdssl', { quiesce: 'try' });
    await b.runAll(tried.runId);
    const t = await lastItem(b, tried.runId);
    expect(t.run.status).toBe('warning');
    expect(t.vm.quiesced).toBe(false);
    expect(JSON.stringify(t.vm.log)).toMatch(/quiescing the guest failed \(creating snapshot of the VM failed: guest quiescing failed\); taking a crash-consistent snapshot instead/);
    // The run's log says what was being done, never the SOAP call or the VM's moref.
    expect(JSON.stringify(t.vm.log)).not.toMatch(/_Task|\bvm-\d+/);
    expect(t.point).not.toBeNull();

    const required = await b.newRun(['sql'], 'nbdssl', { quiesce: 'require' });
    await b.runAll(required.runId);
    const r = await lastItem(b, required.runId);
    expect(r.run.status).toBe('failed');
    expect(r.vm.error).toMatch(/^quiescing the guest failed and the job requires it: creating snapshot of the VM failed: guest quiescing failed\. What to do: VMware Tools could not quiesce the guest/);
    expect(r.vm.error).not.toMatch(/_Task|\bvm-\d+/);
    expect(r.point).toBeNull();
    // The journal row of the failed snapshot attempt stays for the sweep, which finds nothing and resolves it.
    const { sweepOrphans } = await import('../src/sweep.ts');
    const { pgJournal } = await import('../src/adapters/pg-journal.ts');
    await sweepOrphans({
      journal: pgJournal(b.db, b.transporterId, b.journalKey),
      vsphere: (id) => b.connector.portFor(id),
      vcenterIds: async () => [b.vcenterId],
      devices: b.devices,
      proxyVm: (id) => b.connector.proxyVm(id),
      activeRunVmIds: () => new Set(),
      log: (await import('@vaultline/logger')).memoryLogger('sweep').log,
    });
    expect(await leftovers(b)).toEqual({ snapshots: [], foreignDisks: [], journal: 0 });
    await b.lab.failQuiesce('sql', false);
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
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', small]);
    const identity = await Repository.init(small);
    await b.db.repository.update({ where: { id: b.repositoryId }, data: { location: small, encrypted: false, passphraseSealed: null, kdfParams: Prisma.DbNull, ...identityColumns(identity) } });
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

  it('running out of space mid-write fails the VM with a clear message, leaves no restore point, and the repository still verifies clean', async () => {
    const { runId } = await b.newRun(['big'], 'nbdssl');
    await b.runAll(runId);
    const { run, vm, point } = await lastItem(b, runId);
    expect(run.status).toBe('failed');
    expect(vm.error).toMatch(/no space left on the repository storage/);
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

  it('a repository already too full is refused before any snapshot', async () => {
    // The failed backup above recorded nothing; a successful small one sets the estimate.
    execFileSync('dd', ['if=/dev/zero', `of=${small}/filler`, 'bs=1M', 'count=8', 'status=none']);
    try {
      const { runId } = await b.newRun(['big'], 'nbdssl');
      await b.runAll(runId);
      const { run, vm } = await lastItem(b, runId);
      expect(run.status).toBe('failed');
      expect(vm.error).toMatch(/^repository bench is full: \d+ MiB free, about 16 MiB needed$/);
      expect(vm.phase).toBe('failed');
      expect(await leftovers(b)).toEqual({ snapshots: [], foreignDisks: [], journal: 0 });
    } finally {
      await rm(`${small}/filler`, { force: true });
    }
  });
});
