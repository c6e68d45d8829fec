/**
 * The backup cycle (runVmBackup) against in-memory FAKES of vSphere, the block devices and the cleanup journal
 * (memory-ports.ts), with a real repository in a tmp dir: failover per disk, cancel at each phase, journal
 * order. Milliseconds each; the lab tests of apps/transporter cover the real vCenter and stay.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { shutdownWorkerPools } from '@vaultline/repository';
import { runVmBackup } from '../src/backup/cycle.ts';
import { mib } from '../src/backup/progress.ts';
import { CancelledError, DetachError, QuiesceError } from '../src/errors.ts';
import { MiB, PROXY, backupDeps, backupInput, defaultOptions, readPointDisk, tempRepository, twoDiskLab, type FakeLab, type FakeReader, type TempRepository } from './memory-ports.ts';

const repos: TempRepository[] = [];
async function repository(): Promise<TempRepository> {
  const r = await tempRepository();
  repos.push(r);
  return r;
}
afterEach(async () => {
  for (const r of repos.splice(0)) await r.dispose();
});
afterAll(async () => {
  await shutdownWorkerPools();
});

/** Copies of what each disk holds before the run: what the snapshot will freeze (the guest writes only later). */
const contentsBefore = (lab: FakeLab) => new Map([2000, 2001].map((k) => [k, Buffer.from(lab.vsphere.liveBytes('vm-1', k))]));

const readersOf = (lab: FakeLab, transport: string, key: number): FakeReader[] => lab.vsphere.readers.filter((r) => r.transport === transport && r.diskKey === key);

/**
 * Every journal row that was cleared had its undo happen first: a snapshot row only after that snapshot was
 * removed, an attach row only after that device was detached, a LUN mount row only after that mount was
 * unmounted. (A row cleared without anything to undo must not name anything.)
 */
function expectNothingClearedWithoutItsUndo(lab: FakeLab): void {
  const t = lab.timeline;
  for (const row of lab.journal.rows.values()) {
    if (row.status !== 'resolved') continue;
    const cleared = t.first(`journal.resolve ${row.kind} ${row.id}`);
    const target = row.target as { snapshot?: string | null; deviceKey?: number | null; cleanup?: { mountPoint: string } };
    let undo: string;
    if (row.kind === 'snapshot') undo = `vsphere.removeSnapshot ${target.snapshot}`;
    else if (row.kind === 'disk_attach') undo = `vsphere.detachDisk ${target.deviceKey}`;
    else if (row.kind === 'lun_mount') undo = `devices.unmount ${target.cleanup?.mountPoint}`;
    else throw new Error(`unexpected journal row ${row.kind}`);
    expect(t.first(undo), `${row.kind} ${row.id} cleared before "${undo}"`).toBeLessThan(cleared);
  }
}

/** Nothing left behind: no snapshot, nothing attached or mounted, every reader closed, every journal row cleared. */
async function expectAllCleanedUp(lab: FakeLab): Promise<void> {
  expect([...lab.vsphere.snapshots.keys()]).toEqual([]);
  expect([...lab.vsphere.attached.values()]).toEqual([]);
  expect([...lab.devices.mounted]).toEqual([]);
  expect(lab.vsphere.readers.filter((r) => !r.closed).map((r) => `${r.transport} ${r.diskKey}`)).toEqual([]);
  expect(lab.journal.open.map((r) => `${r.kind} ${r.id}`)).toEqual([]);
  expect(await lab.journal.pending()).toEqual([]);
  expect(lab.vsphere.violations).toEqual([]);
  expectNothingClearedWithoutItsUndo(lab);
}

describe('backup failover per disk (against fakes of vSphere)', () => {
  it('automatic mode: the first disk SAN read fails mid-copy, that disk continues over NBDSSL from where it stopped, the other disk stays on SAN; the point is byte-identical to the snapshot', async () => {
    const lab = twoDiskLab({ sizes: [6 * MiB, 3 * MiB] });
    const failAt = 2.5 * MiB + 12_345;
    lab.faults.reads.push({ transport: 'san', diskKey: 2000, fromOffset: failAt, message: 'fake SCSI error: LUN went offline' });
    const atSnapshot = contentsBefore(lab);
    // The guest keeps writing to both disks while they are copied: none of it may reach the restore point.
    let guestWrote = false;
    lab.vsphere.onReaderOpen = (r) => {
      r.onRead = () => {
        if (guestWrote) return;
        guestWrote = true;
        lab.vsphere.guestWrite('vm-1', 2000, 3 * MiB, Buffer.alloc(MiB, 0x41));
        lab.vsphere.guestWrite('vm-1', 2001, 0, Buffer.alloc(64 * 1024, 0x42));
      };
    };
    const { repo } = await repository();
    const t0 = performance.now();
    const result = await runVmBackup(backupInput(), backupDeps(lab, repo));
    const ms = performance.now() - t0;

    expect(guestWrote).toBe(true);
    const [d0, d1] = result.disks;
    expect(d0).toMatchObject({ deviceKey: 2000, transport: 'nbdssl', bytesRead: 6 * MiB });
    expect(d1).toMatchObject({ deviceKey: 2001, transport: 'san', bytesRead: 3 * MiB });
    expect(d1!.reasons.join('; ')).not.toMatch(/failover/);
    // The restore point records how each disk was really read: both ways for the one that failed over.
    expect(result.manifest.disks.map((d) => d.transport)).toEqual(['san,nbdssl', 'san']);
    expect(result.manifest.transport).toBe('san,nbdssl');
    // The read-ahead segment (256 KiB) holding the failing byte fails whole: the copy resumes at its start.
    const resumeAt = Math.floor(failAt / (256 * 1024)) * 256 * 1024;
    expect(resumeAt).toBeGreaterThan(0);
    expect(result.warnings).toContain(`disk Hard disk 1: Direct SAN read failed at ${mib(resumeAt)} (fake SCSI error: LUN went offline); continuing over NBDSSL`);
    expect(d0!.reasons).toContain('Direct SAN failed mid-copy: fake SCSI error: LUN went offline; failover to NBDSSL');
    // The run log speaks the operator's words: transports by their names, the snapshot by the name vSphere shows, no morefs.
    const log = lab.runLog.map((l) => l.message);
    expect(log).toContain('disk Hard disk 2: Direct SAN — ' + d1!.reasons.join('; '));
    expect(log.some((l) => /^snapshot vaultline-\S+ taken \(crash-consistent\) in [\d.]+ s$/.test(l)), log.join('\n')).toBe(true);
    expect(log.filter((l) => /\b(snapshot|vm|host|datastore|datacenter|group|resgroup)-\d+\b/.test(l))).toEqual([]);

    // From where it stopped: SAN delivered exactly [0, resumeAt), the network reader exactly the rest.
    const [san0] = readersOf(lab, 'san', 2000);
    const [net0, ...moreNet0] = readersOf(lab, 'nbdssl', 2000);
    expect(moreNet0).toEqual([]);
    expect(san0!.reads.every((r) => r.start + r.length <= resumeAt)).toBe(true);
    expect(san0!.bytesServed).toBe(resumeAt);
    expect(net0!.lowestOffset).toBe(resumeAt);
    expect(net0!.bytesServed).toBe(6 * MiB - resumeAt);
    // The other disk was unaffected: read once, over SAN only.
    expect(readersOf(lab, 'nbdssl', 2001)).toEqual([]);
    expect(readersOf(lab, 'san', 2001).map((r) => r.bytesServed)).toEqual([3 * MiB]);

    // Byte-identical to the snapshot (not to the live disks the guest changed meanwhile).
    const points = await repo.listRestorePoints();
    expect(points).toEqual([{ vmId: 'uuid-vm-1', id: result.manifest.id }]);
    for (const key of [2000, 2001]) {
      const stored = await readPointDisk(repo, points[0]!, key);
      expect(stored.equals(atSnapshot.get(key)!), `disk ${key} differs from the snapshot`).toBe(true);
      expect(stored.equals(lab.vsphere.liveBytes('vm-1', key))).toBe(false);
    }
    await expectAllCleanedUp(lab);
    expect(ms).toBeLessThan(2000);
  });

  it('automatic mode over HotAdd: the second disk fails on its 3rd read, is detached (and its row cleared) before the network takes over; the first disk stays on HotAdd', async () => {
    const lab = twoDiskLab({ sizes: [MiB, 2 * MiB], lunVisible: false });
    lab.faults.reads.push({ transport: 'hotadd', diskKey: 2001, onCall: 3, message: 'fake I/O error on /dev/sdc' });
    const atSnapshot = contentsBefore(lab);
    const { repo } = await repository();
    const result = await runVmBackup(backupInput(), backupDeps(lab, repo, { maxParallelDisks: 1 }));

    expect(result.disks.map((d) => [d.deviceKey, d.transport])).toEqual([
      [2000, 'hotadd'],
      [2001, 'nbdssl'],
    ]);
    expect(result.warnings.some((w) => /^disk Hard disk 2: HotAdd read failed at \d[\d,]* (KiB|MiB) \(fake I\/O error on \/dev\/sdc\); continuing over NBDSSL$/.test(w))).toBe(true);
    const att = lab.vsphere.attachHistory.find((a) => a.fileName === '[ds1] web01/web01_1.vmdk')!;
    const t = lab.timeline;
    // The HotAdd disk is let go of (detached, gone, row cleared) before the network reader opens.
    expect(t.first(`vsphere.detachDisk ${att.deviceKey}`)).toBeLessThan(t.first('reader.open nbdssl 2001'));
    expect(t.first(`devices.waitGone ${att.uuid}`)).toBeLessThan(t.first('reader.open nbdssl 2001'));
    expect(t.first(/^journal\.resolve disk_attach /)).toBeLessThan(t.first('reader.open nbdssl 2001'));
    const [net] = readersOf(lab, 'nbdssl', 2001);
    expect(net!.lowestOffset).toBeGreaterThan(0);
    expect(readersOf(lab, 'hotadd', 2001)[0]!.bytesServed + net!.bytesServed).toBe(2 * MiB);
    for (const key of [2000, 2001]) expect((await readPointDisk(repo, { vmId: 'uuid-vm-1', id: result.manifest.id }, key)).equals(atSnapshot.get(key)!)).toBe(true);
    await expectAllCleanedUp(lab);
  });

  it('manual SAN with failover off: the disk fails, nothing is committed, the snapshot is removed, nothing stays mounted and the journal is empty', async () => {
    const lab = twoDiskLab({ sizes: [2 * MiB, MiB] });
    lab.faults.reads.push({ transport: 'san', diskKey: 2000, fromOffset: MiB, message: 'fake SCSI error: LUN went offline' });
    const { repo } = await repository();
    const run = runVmBackup(backupInput({ transportMode: 'san', options: defaultOptions({ failoverToNetwork: false }) }), backupDeps(lab, repo));
    await expect(run).rejects.toThrow('disk Hard disk 1 (san): fake SCSI error: LUN went offline');
    await expect(run).rejects.not.toBeInstanceOf(CancelledError);

    expect(lab.vsphere.readers.filter((r) => r.transport === 'nbdssl')).toEqual([]);
    expect(await repo.listRestorePoints()).toEqual([]);
    expect(lab.vsphere.snapshotsTaken).toEqual(['snapshot-1']);
    expect(lab.diskPhases).toContainEqual({ key: 2000, phase: 'failed' });
    expect(lab.diskPhases).not.toContainEqual({ key: 2000, phase: 'done' });
    // Every row was added and cleared: the preflight probe, the snapshot, each disk's LUN mount.
    expect(lab.journal.calls.filter((c) => c.op === 'add').map((c) => c.kind)).toEqual(['lun_mount', 'snapshot', 'lun_mount', 'lun_mount']);
    await expectAllCleanedUp(lab);
  });
});

describe('long phases say what they wait on (fake vSphere whose snapshot tasks report progress; vcsim finishes tasks at once)', () => {
  it('preflight, the snapshot (quiesced) and its removal name vCenter and the task progress every 10 %, in order, never after the next phase; the commit names the repository', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB] });
    lab.vsphere.taskProgress = [5, 20, 25, 40, 100];
    const { repo } = await repository();
    await runVmBackup(backupInput({ options: defaultOptions({ quiesce: 'try' }) }), backupDeps(lab, repo));
    const of = (phase: string) => lab.phaseDetails.filter((p) => p.phase === phase).map((p) => p.detail);
    expect(of('preflight')).toEqual(["reading the VM's configuration, disks and datastores from vCenter"]);
    const snap = "vCenter is taking a quiesced snapshot (VMware Tools first has the guest's applications flush their writes)";
    expect(of('snapshot')).toEqual([snap, `${snap} — task 20 %`, `${snap} — task 40 %`]);
    const removing = 'vCenter is removing the snapshot, merging what the VM wrote during the backup into its disks';
    expect(of('removing snapshot')).toEqual([removing, `${removing} — task 20 %`, `${removing} — task 40 %`]);
    expect(of('committing')).toEqual(["writing the restore point's disk indexes and manifest to the repository"]);
    // Each phase's details come before the next phase starts.
    const order = lab.phaseDetails.map((p) => p.phase);
    expect(order.lastIndexOf('snapshot')).toBeLessThan(order.indexOf('copying'));
    expect(order.lastIndexOf('removing snapshot')).toBeLessThan(order.indexOf('committing'));
  });
});

describe('backup cancel at each phase (against fakes of vSphere)', () => {
  // One disk at a time, over HotAdd (the LUN is not visible) and over SAN: the first disk is 5 MiB, i.e. two
  // pieces (the cycle copies 4 MiB pieces and checks for a cancel before each).
  type Via = 'hotadd' | 'san';
  /** Which disks were opened (attached or mounted) over `via`, in order. */
  const opened = (lab: FakeLab, via: Via) => lab.vsphere.readers.filter((r) => r.transport === via).map((r) => r.diskKey);
  const phases: { name: string; arm(lab: FakeLab): void; check(lab: FakeLab, via: Via): void }[] = [
    {
      name: 'before the snapshot',
      arm: (lab) => {
        lab.cancelled = true;
      },
      check: (lab) => {
        expect(lab.vsphere.snapshotsTaken).toEqual([]);
        expect(lab.journal.calls.filter((c) => c.kind !== 'lun_mount')).toEqual([]);
      },
    },
    {
      name: 'right after the snapshot is taken',
      arm: (lab) => {
        lab.timeline.listener = (e) => {
          if (e.startsWith('vsphere.createSnapshot snapshot-')) lab.cancelled = true;
        };
      },
      check: (lab, via) => {
        expect(lab.vsphere.snapshotsTaken).toEqual(['snapshot-1']);
        expect(opened(lab, via)).toEqual([]);
      },
    },
    {
      name: 'during the copy of the first disk',
      arm: (lab) => {
        lab.vsphere.onReaderOpen = (r) => {
          r.onRead = () => {
            if (r.diskKey === 2000 && r.bytesServed >= MiB) lab.cancelled = true;
          };
        };
      },
      check: (lab, via) => {
        const [r] = readersOf(lab, via, 2000);
        expect(r!.bytesServed).toBeGreaterThanOrEqual(MiB);
        expect(r!.bytesServed).toBeLessThan(5 * MiB);
        expect(opened(lab, via)).toEqual([2000]);
        expect(lab.diskPhases).toContainEqual({ key: 2000, phase: 'cancelled' });
      },
    },
    {
      name: 'between the disks',
      arm: (lab) => {
        lab.timeline.listener = (e) => {
          if (e === 'diskPhase 2000 done') lab.cancelled = true;
        };
      },
      check: (lab, via) => {
        expect(readersOf(lab, via, 2000)[0]!.bytesServed).toBe(5 * MiB);
        // The second disk was never opened.
        expect(opened(lab, via)).toEqual([2000]);
      },
    },
    {
      name: 'before the commit (every disk read)',
      arm: (lab) => {
        lab.timeline.listener = (e) => {
          if (e === 'diskPhase 2001 done') lab.cancelled = true;
        };
      },
      check: (lab, via) => {
        expect(opened(lab, via)).toEqual([2000, 2001]);
        expect(readersOf(lab, via, 2001)[0]!.bytesServed).toBe(MiB);
        expect(lab.phases).not.toContain('committing');
      },
    },
  ];

  for (const via of ['hotadd', 'san'] as const) {
    for (const p of phases) {
      it(`${via}: cancelled ${p.name}: CancelledError, no restore point, snapshot removed, every disk ${via === 'san' ? 'unmounted' : 'detached'}, journal empty`, async () => {
        const lab = twoDiskLab({ sizes: [5 * MiB, MiB], lunVisible: via === 'san' });
        p.arm(lab);
        const { repo } = await repository();
        await expect(runVmBackup(backupInput(), backupDeps(lab, repo, { maxParallelDisks: 1 }))).rejects.toBeInstanceOf(CancelledError);
        expect(await repo.listRestorePoints()).toEqual([]);
        expect(await repo.listVms()).toEqual([]);
        expect(lab.vsphere.readers.every((r) => r.transport === via)).toBe(true);
        p.check(lab, via);
        await expectAllCleanedUp(lab);
      });
    }
  }

  it('cancelled while two disks are copied in parallel: both stop, both are detached, nothing committed', async () => {
    const lab = twoDiskLab({ sizes: [5 * MiB, 5 * MiB], lunVisible: false });
    lab.vsphere.onReaderOpen = (r) => {
      r.onRead = () => {
        if (r.bytesServed >= MiB) lab.cancelled = true;
      };
    };
    const { repo } = await repository();
    await expect(runVmBackup(backupInput(), backupDeps(lab, repo, { maxParallelDisks: 2 }))).rejects.toBeInstanceOf(CancelledError);
    expect(lab.vsphere.attachHistory).toHaveLength(2);
    expect(lab.vsphere.readers.every((r) => r.bytesServed < 5 * MiB)).toBe(true);
    expect(await repo.listRestorePoints()).toEqual([]);
    await expectAllCleanedUp(lab);
  });

  it('a cancel arriving once the snapshot is being removed is not honoured: the complete point is committed (current behaviour)', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB], lunVisible: false });
    lab.timeline.listener = (e) => {
      if (e === 'phase removing snapshot') lab.cancelled = true;
    };
    const { repo } = await repository();
    const result = await runVmBackup(backupInput(), backupDeps(lab, repo));
    expect(lab.cancelled).toBe(true);
    expect(await repo.listRestorePoints()).toEqual([{ vmId: 'uuid-vm-1', id: result.manifest.id }]);
    await expectAllCleanedUp(lab);
  });
});

describe('backup cleanup journal order (against fakes of vSphere)', () => {
  it('HotAdd: snapshot row added before the snapshot and cleared after its removal; each attach row added before the attach and cleared after detach and the device is gone', async () => {
    const lab = twoDiskLab({ sizes: [2 * MiB, MiB], lunVisible: false });
    const { repo } = await repository();
    const result = await runVmBackup(backupInput({ transportMode: 'hotadd' }), backupDeps(lab, repo));
    expect(result.disks.map((d) => d.transport)).toEqual(['hotadd', 'hotadd']);
    const t = lab.timeline;
    const j = lab.journal;

    const snapRow = [...j.rows.values()].find((r) => r.kind === 'snapshot')!;
    expect(snapRow.target).toEqual({ vmMoref: 'vm-1', snapshot: 'snapshot-1' });
    expect(snapRow).toMatchObject({ runVmId: 'runvm-1', vcenterId: 'vc-1', status: 'resolved' });
    expect(t.first(`journal.add snapshot ${snapRow.id}`)).toBeLessThan(t.first(/^vsphere\.createSnapshot\.call /));
    expect(t.first('vsphere.createSnapshot snapshot-1')).toBeLessThan(t.first(`journal.update snapshot ${snapRow.id}`));
    expect(t.first('vsphere.removeSnapshot snapshot-1')).toBeLessThan(t.first(`journal.resolve snapshot ${snapRow.id}`));

    const attachRows = [...j.rows.values()].filter((r) => r.kind === 'disk_attach');
    expect(attachRows).toHaveLength(2);
    for (const row of attachRows) {
      const target = row.target as { proxyVm: string; fileName: string; deviceKey: number; uuid: string };
      expect(target.proxyVm).toBe('vm-proxy');
      const seq = [
        `journal.add disk_attach ${row.id}`,
        `vsphere.attachDisk.call ${target.fileName}`,
        `vsphere.attachDisk ${target.deviceKey}`,
        `journal.update disk_attach ${row.id}`,
        `vsphere.detachDisk ${target.deviceKey}`,
        `devices.waitGone ${target.uuid}`,
        `journal.resolve disk_attach ${row.id}`,
      ].map((e) => t.first(e));
      expect(seq).toEqual([...seq].sort((a, b) => a - b));
      // Every disk is let go of before the snapshot is removed.
      expect(t.first(`journal.resolve disk_attach ${row.id}`)).toBeLessThan(t.first(/^vsphere\.removeSnapshot\.call /));
    }
    // The snapshot disks (base files), never the live delta, were attached.
    expect(lab.vsphere.attachHistory.map((a) => a.fileName).sort()).toEqual(['[ds1] web01/web01.vmdk', '[ds1] web01/web01_1.vmdk']);
    expect(j.calls.filter((c) => c.op === 'failed')).toEqual([]);
    await expectAllCleanedUp(lab);
  });

  it('SAN: each LUN mount row (preflight and copy) is added before its mount and cleared after its unmount', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB] });
    const { repo } = await repository();
    const result = await runVmBackup(backupInput(), backupDeps(lab, repo));
    expect(result.disks.map((d) => d.transport)).toEqual(['san', 'san']);
    const rows = [...lab.journal.rows.values()].filter((r) => r.kind === 'lun_mount');
    // One preflight probe for the one LUN, one mount per disk.
    expect(rows.map((r) => (r.target as { preflight?: boolean }).preflight ?? false)).toEqual([true, false, false]);
    for (const row of rows) {
      const mp = (row.target as { cleanup: { mountPoint: string } }).cleanup.mountPoint;
      const t = lab.timeline;
      // Added, then told what to undo, then mounted; cleared only once unmounted.
      const seq = [`journal.add lun_mount ${row.id}`, `journal.update lun_mount ${row.id}`, new RegExp(`^devices\\.mount ${mp} `), `devices.unmount ${mp}`, `journal.resolve lun_mount ${row.id}`].map((e) => t.first(e));
      expect(seq).toEqual([...seq].sort((a, b) => a - b));
    }
    await expectAllCleanedUp(lab);
  });

  it('snapshot removal keeps failing: tried three times, then the complete point is committed with a warning, and the snapshot row stays (marked failed) for the sweep, which finds it by its tag', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB], lunVisible: false });
    lab.faults.failOp('removeSnapshot', 'fake vim.fault.TaskInProgress');
    const { repo } = await repository();
    const input = backupInput();
    const result = await runVmBackup(input, backupDeps(lab, repo));

    expect(lab.timeline.events.filter((e) => e.startsWith('vsphere.removeSnapshot.call'))).toHaveLength(3);
    expect(lab.runLog.filter((l) => l.message.startsWith(`removing snapshot vaultline-${input.runVmId} failed (fake vim.fault.TaskInProgress); trying again`)).map((l) => l.level)).toEqual(['warn', 'warn']);
    expect(result.warnings).toEqual([`snapshot vaultline-${input.runVmId} could not be removed (fake vim.fault.TaskInProgress); the restore point is complete, and the orphan sweep will remove the snapshot`]);
    // Every byte came from the snapshot: the point is good.
    expect((await repo.listRestorePoints()).map((r) => r.id)).toEqual([result.manifest.id]);
    for (const key of [2000, 2001]) expect((await readPointDisk(repo, { vmId: 'uuid-vm-1', id: result.manifest.id }, key)).equals(lab.vsphere.liveBytes('vm-1', key))).toBe(true);
    const open = lab.journal.open;
    expect(open.map((r) => [r.kind, r.target, r.attempts, r.lastError])).toEqual([['snapshot', { vmMoref: 'vm-1', snapshot: 'snapshot-1' }, 1, 'fake vim.fault.TaskInProgress']]);
    expect(await lab.vsphere.findTaggedSnapshots('runvm-1')).toEqual([{ vmMoref: 'vm-1', vmName: 'web01', snapshot: 'snapshot-1', runVmId: 'runvm-1' }]);
    // The disks were let go of before, and their rows cleared.
    expect([...lab.vsphere.attached.values()]).toEqual([]);
    expect([...lab.journal.rows.values()].filter((r) => r.kind === 'disk_attach').every((r) => r.status === 'resolved')).toBe(true);
    expect(lab.vsphere.violations).toEqual([]);
    expectNothingClearedWithoutItsUndo(lab);
  });

  it('snapshot removal fails once: the second try removes it, the row is cleared, and the point is committed without a warning', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB], lunVisible: false });
    lab.faults.failOp('removeSnapshot', 'fake vim.fault.TaskInProgress', 1);
    const { repo } = await repository();
    const result = await runVmBackup(backupInput(), backupDeps(lab, repo));
    expect(lab.timeline.events.filter((e) => e.startsWith('vsphere.removeSnapshot.call'))).toHaveLength(2);
    expect(result.warnings).toEqual([]);
    expect((await repo.listRestorePoints()).map((r) => r.id)).toEqual([result.manifest.id]);
    await expectAllCleanedUp(lab);
  });

  it('snapshot creation fails: the row (no snapshot moref yet) stays pending for the sweep, which finds snapshots by tag', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB], lunVisible: false });
    lab.faults.failOp('createSnapshot', 'fake timeout waiting for CreateSnapshot_Task');
    const { repo } = await repository();
    await expect(runVmBackup(backupInput(), backupDeps(lab, repo))).rejects.toThrow('fake timeout waiting for CreateSnapshot_Task');
    expect(lab.journal.open.map((r) => [r.kind, r.target, r.attempts])).toEqual([['snapshot', { vmMoref: 'vm-1', snapshot: null }, 1]]);
    expect(lab.vsphere.attachHistory).toEqual([]);
    expect(await repo.listRestorePoints()).toEqual([]);
    // Both disks were listed (queued) before the snapshot was asked for, and end failed with their VM: none stays queued.
    expect(lab.timeline.first('diskPhase 2000 queued')).toBeLessThan(lab.timeline.first(/^vsphere\.createSnapshot\.call /));
    expect(lab.timeline.first('diskPhase 2001 queued')).toBeLessThan(lab.timeline.first(/^vsphere\.createSnapshot\.call /));
    expect(lab.diskPhases).toEqual([
      { key: 2000, phase: 'queued' },
      { key: 2001, phase: 'queued' },
      { key: 2000, phase: 'failed' },
      { key: 2001, phase: 'failed' },
    ]);
  });

  it('with one disk task at a time, the second disk is listed queued from the start and copied after the first', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB], lunVisible: false });
    const { repo } = await repository();
    await runVmBackup(backupInput(), backupDeps(lab, repo, { maxParallelDisks: 1 }));
    const t = lab.timeline;
    expect(t.first('diskPhase 2001 queued')).toBeLessThan(t.first(/^vsphere\.createSnapshot\.call /));
    expect(t.first('diskPhase 2000 done')).toBeLessThan(t.first('diskPhase 2001 opening'));
    expect(lab.diskPhases.filter((p) => p.key === 2001).map((p) => p.phase)).toEqual(['queued', 'opening', 'reading', 'done']);
  });

  it('detach fails after a HotAdd copy: that disk fails saying so, no other disk is attached, the snapshot is left (never removed under an attached disk) and both rows stay for the sweep', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB], lunVisible: false });
    lab.faults.failOp('detachDisk', 'fake vim.fault.InvalidDeviceSpec');
    const { repo } = await repository();
    const err = await runVmBackup(backupInput(), backupDeps(lab, repo, { maxParallelDisks: 1 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DetachError);
    expect((err as Error).message).toBe(`disk Hard disk 1 (hotadd): the disk could not be detached from ${PROXY.name} (fake vim.fault.InvalidDeviceSpec); it stays attached, with the snapshot, until the orphan sweep detaches it`);

    expect(lab.diskPhases).toContainEqual({ key: 2000, phase: 'failed' });
    expect(lab.vsphere.attachHistory).toHaveLength(1);
    // vSphere would refuse (the file is locked), and trying would only hide the real error: not tried at all.
    expect(lab.timeline.events.filter((e) => e.startsWith('vsphere.removeSnapshot.call'))).toEqual([]);
    expect(lab.vsphere.violations).toEqual([]);
    expect(lab.journal.open.map((r) => [r.kind, r.lastError])).toEqual([
      ['snapshot', 'a disk of this snapshot is still attached to the proxy VM; the orphan sweep detaches it, then removes the snapshot'],
      ['disk_attach', 'fake vim.fault.InvalidDeviceSpec'],
    ]);
    const attachRow = lab.journal.open.find((r) => r.kind === 'disk_attach')!;
    expect(lab.vsphere.attached.has((attachRow.target as { uuid: string }).uuid)).toBe(true);
    expect(await repo.listRestorePoints()).toEqual([]);
    expectNothingClearedWithoutItsUndo(lab);
  });
});

describe('backup: a HotAdd failover whose network open fails too (against fakes of vSphere)', () => {
  // cycle.ts, mid-copy failover: the HotAdd source is closed (detached), `source` still names it when the network
  // open then throws, and the disk's `finally` closes it again: a second detachDisk of a device key that is no
  // longer ours (vSphere gives a freed key to the next disk hot-added to the proxy).
  it('the HotAdd device is detached exactly once, and no close fails', async () => {
    const lab = twoDiskLab({ sizes: [2 * MiB, MiB], lunVisible: false });
    lab.faults.reads.push({ transport: 'hotadd', diskKey: 2000, onCall: 2, message: 'fake I/O error on /dev/sdc' });
    lab.faults.opens.push({ transport: 'nbdssl', diskKey: 2000, message: 'fake NFC: cannot open the disk' });
    const { repo } = await repository();
    await expect(runVmBackup(backupInput(), backupDeps(lab, repo, { maxParallelDisks: 1 }))).rejects.toThrow('disk Hard disk 1 (hotadd): fake NFC: cannot open the disk');
    const key = lab.vsphere.attachHistory[0]!.deviceKey;
    expect(lab.timeline.events.filter((e) => e === `vsphere.detachDisk.call ${key}`)).toHaveLength(1);
    expect(lab.runLog.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([]);
    expect(await repo.listRestorePoints()).toEqual([]);
    await expectAllCleanedUp(lab);
  });

  it('two VMs on one proxy: the failed failover of one VM does not detach the disk the other VM was given the freed device key for', async () => {
    const lab = twoDiskLab({ sizes: [2 * MiB, MiB], lunVisible: false });
    lab.vsphere.addVm({ moref: 'vm-2', name: 'db01', disks: [{ key: 2100, capacityBytes: 5 * MiB }] });
    lab.faults.reads.push({ transport: 'hotadd', diskKey: 2000, onCall: 2, message: 'fake I/O error on /dev/sdc' });
    lab.faults.opens.push({ transport: 'nbdssl', diskKey: 2000, message: 'fake NFC: cannot open the disk' });
    const { repo } = await repository();
    let second: Promise<Awaited<ReturnType<typeof runVmBackup>>> | null = null;
    // While web01's network open is under way, db01's backup starts and hot-adds its disk (reading it).
    lab.vsphere.beforeNetworkOpen = async (disk) => {
      if (disk.key !== 2000 || second) return;
      const reading = new Promise<void>((resolve) => {
        lab.vsphere.onReaderOpen = (r) => {
          if (r.diskKey === 2100 && r.transport === 'hotadd') r.onRead = () => resolve();
        };
      });
      second = runVmBackup(backupInput({ vmMoref: 'vm-2', runVmId: 'runvm-2' }), backupDeps(lab, repo, { maxParallelDisks: 1 }));
      second.catch(() => undefined);
      await reading;
    };
    await expect(runVmBackup(backupInput(), backupDeps(lab, repo, { maxParallelDisks: 1 }))).rejects.toThrow('fake NFC: cannot open the disk');
    expect(second).not.toBeNull();
    const result = await second!;
    const [web01Disk1, db01Disk] = lab.vsphere.attachHistory;
    // The freed key was given to db01's disk (as vSphere does).
    expect(db01Disk!.fileName).toBe('[ds1] db01/db01.vmdk');
    expect(db01Disk!.deviceKey).toBe(web01Disk1!.deviceKey);
    // db01's disk must be read over HotAdd to the end, and detached by db01 only.
    expect(result.disks.map((d) => d.transport)).toEqual(['hotadd']);
    expect(lab.timeline.events.filter((e) => e === `vsphere.detachDisk.call ${db01Disk!.deviceKey}`)).toHaveLength(2);
    await expectAllCleanedUp(lab);
  });
});

describe('backup CBT and quiescing (against fakes of vSphere)', () => {
  it('an incremental reads only what the guest changed since the last snapshot, and the new point is byte-identical to the new snapshot', async () => {
    const lab = twoDiskLab({ sizes: [2 * MiB, MiB], lunVisible: false });
    const { repo } = await repository();
    const first = await runVmBackup(backupInput(), backupDeps(lab, repo));
    expect(first.disks.map((d) => [d.cbtUsed, d.bytesRead])).toEqual([
      [true, 2 * MiB],
      [true, MiB],
    ]);
    lab.vsphere.guestWrite('vm-1', 2000, 300_000, Buffer.alloc(70_000, 0x61));
    const atSecond = contentsBefore(lab);
    const previous = {
      ref: { vmId: first.manifest.vmId, id: first.manifest.id },
      changeIds: first.changeIds,
      capacities: { '2000': 2 * MiB, '2001': MiB },
      suspect: false,
    };
    const second = await runVmBackup(backupInput({ runVmId: 'runvm-2', previous }), backupDeps(lab, repo));
    expect(second.disks.map((d) => [d.deviceKey, d.bytesRead])).toEqual([
      [2000, 70_000],
      [2001, 0],
    ]);
    expect(second.manifest.parent).toBe(first.manifest.id);
    for (const key of [2000, 2001]) expect((await readPointDisk(repo, { vmId: second.manifest.vmId, id: second.manifest.id }, key)).equals(atSecond.get(key)!)).toBe(true);
    await expectAllCleanedUp(lab);
  });

  it('CBT misses a write: the sanity check finds it, stores the live bytes and marks the point suspect', async () => {
    const lab = twoDiskLab({ sizes: [2 * MiB, MiB], lunVisible: false });
    const { repo } = await repository();
    const first = await runVmBackup(backupInput(), backupDeps(lab, repo));
    lab.vsphere.guestWrite('vm-1', 2000, 64 * 1024, Buffer.alloc(4096, 0x62));
    lab.vsphere.guestWrite('vm-1', 2000, MiB, Buffer.alloc(64 * 1024, 0x63), { cbtMisses: true });
    const atSecond = contentsBefore(lab);
    const previous = { ref: { vmId: first.manifest.vmId, id: first.manifest.id }, changeIds: first.changeIds, capacities: { '2000': 2 * MiB, '2001': MiB }, suspect: false };
    // Rate 1: every unchanged 64 KiB block is compared with the previous point.
    const second = await runVmBackup(backupInput({ runVmId: 'runvm-2', previous, options: defaultOptions({ cbtSanityRate: 1 }) }), backupDeps(lab, repo));
    expect(second.suspect).toBe(true);
    expect(second.disks[0]).toMatchObject({ bytesRead: 4096, sanityMismatches: 1 });
    expect(second.warnings).toContain(`disk Hard disk 1: CBT called [${MiB}, +${64 * 1024}) unchanged but it differs from the previous restore point`);
    expect((await readPointDisk(repo, { vmId: second.manifest.vmId, id: second.manifest.id }, 2000)).equals(atSecond.get(2000)!)).toBe(true);
    await expectAllCleanedUp(lab);
  });

  it('quiescing fails with quiesce "try": a crash-consistent snapshot is taken instead, and the run says so', async () => {
    const lab = twoDiskLab({ sizes: [MiB, MiB], lunVisible: false });
    lab.vsphere.quiesceError = new QuiesceError('fake: VMware Tools not running');
    const { repo } = await repository();
    const result = await runVmBackup(backupInput({ options: defaultOptions({ quiesce: 'try' }) }), backupDeps(lab, repo));
    expect(result.quiesced).toBe(false);
    expect(result.warnings).toContain('quiescing the guest failed (fake: VMware Tools not running); taking a crash-consistent snapshot instead');
    expect(lab.timeline.events.filter((e) => e.startsWith('vsphere.createSnapshot.call'))).toEqual(['vsphere.createSnapshot.call vm-1 quiesce=true', 'vsphere.createSnapshot.call vm-1 quiesce=false']);
    await expectAllCleanedUp(lab);
  });
});
