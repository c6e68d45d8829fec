/**
 * Quiesce failures. The lab vCenter (vcsim) accepts quiesce=true and never
 * fails it, so these tests drive the real cycle with a fake ESXi whose
 * quiesced snapshots fail, as VMware Tools does when a VSS writer breaks.
 * The repository and everything else are real.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { JobOptionsSchema } from '@vaultline/contracts';
import { createLogger } from '@vaultline/logger';
import { DiskReader, Repository, RestorePointWriter } from '@vaultline/repository';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runVmBackup, VmBackupError, type VmBackupDeps } from '../src/backup/cycle.ts';
import type { CleanupJournal } from '../src/backup/journal.ts';
import { QuiesceError, type LocalDevices, type VmInfo, type VSpherePort } from '../src/backup/ports.ts';

const MiB = 1024 * 1024;

function fakeEsxi() {
  const data = Buffer.alloc(2 * MiB);
  data.fill(7, 0, 64 * 1024);
  const snapshots = new Set<string>();
  let n = 0;
  const vm: VmInfo = {
    moref: 'vm-1',
    name: 'sql01',
    instanceUuid: '5012aaaa-0000-0000-0000-000000000001',
    powerState: 'poweredOn',
    changeTrackingEnabled: true,
    disks: [{ key: 2000, label: 'Hard disk 1', capacityBytes: data.length, fileName: '[ds1] sql01/sql01.vmdk', datastore: 'ds1', controller: 'pvscsi', changeId: '52 aa/1' }],
    hardware: {},
  };
  const port: Partial<VSpherePort> = {
    getVm: async () => vm,
    datastore: async () => ({ name: 'ds1', type: 'NFS', naaIds: [], hosts: [] }),
    createSnapshot: async (_vm, _run, quiesce) => {
      if (quiesce) throw new QuiesceError('fake ESXi: VSS writer SqlServerWriter failed');
      const s = `snapshot-${++n}`;
      snapshots.add(s);
      return s;
    },
    snapshotDisks: async () => vm.disks,
    removeSnapshot: async (s) => {
      snapshots.delete(s);
    },
    changedAreas: async () => [{ start: 0, length: 64 * 1024 }],
    openNetworkReader: async (_f, capacity) => ({ capacity, read: async (o, l) => Buffer.from(data.subarray(o, o + l)), close: async () => undefined }),
  };
  return { port: port as VSpherePort, snapshots };
}

function memoryJournal(): CleanupJournal & { open: Map<string, unknown> } {
  const open = new Map<string, unknown>();
  let id = 0;
  return {
    open,
    add: async (_k, target) => {
      const i = String(++id);
      open.set(i, target);
      return i;
    },
    update: async (i, target) => void open.set(i, target),
    resolve: async (i) => void open.delete(i),
    failed: async () => undefined,
    pending: async () => [],
  };
}

describe('quiesce failures (fake ESXi whose quiesced snapshots fail; the lab cannot fail quiesce)', () => {
  let dir: string;
  let repo: Repository;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-quiesce-'));
    await Repository.init(dir);
    repo = await Repository.open(dir);
  });
  afterEach(async () => {
    await repo.close();
    await rm(dir, { recursive: true, force: true });
  });

  const deps = (port: VSpherePort, journal: CleanupJournal, logLines: string[]): VmBackupDeps => ({
    vsphere: port,
    devices: {} as LocalDevices,
    journal,
    repo,
    openWriter: (r, o) => RestorePointWriter.open(r, o),
    openParentReader: (r, ref, key) => DiskReader.open(r, ref, key),
    transporter: { blockDevices: false, proxyVm: null, networkTransport: 'nbdssl' },
    progress: { disk: () => undefined },
    log: createLogger({ name: 't', destination: new Writable({ write: (_c, _e, d) => d() }) }),
    runLog: (_l, m) => logLines.push(m),
    phase: async () => undefined,
    diskPhase: async () => undefined,
    isCancelled: () => false,
    maxParallelDisks: 2,
  });
  const input = (quiesce: 'try' | 'require') => ({
    runId: 'r1',
    runVmId: '00000000-0000-4000-8000-000000000001',
    vcenterId: 'vc',
    vmMoref: 'vm-1',
    transportMode: 'automatic' as const,
    options: JobOptionsSchema.parse({ quiesce }),
    previous: null,
    repositoryVmId: (vm: VmInfo) => vm.instanceUuid!,
  });

  it("'try' falls back to a crash-consistent snapshot, says so, and commits", async () => {
    const esxi = fakeEsxi();
    const journal = memoryJournal();
    const lines: string[] = [];
    const result = await runVmBackup(input('try'), deps(esxi.port, journal, lines));
    expect(result.quiesced).toBe(false);
    expect(result.warnings.join('\n')).toContain('quiescing the guest failed (fake ESXi: VSS writer SqlServerWriter failed); taking a crash-consistent snapshot instead');
    expect(esxi.snapshots.size).toBe(0);
    expect(journal.open.size).toBe(0);
    expect((await repo.listRestorePoints()).length).toBe(1);
  });

  it("'require' fails the VM without a restore point and leaves no snapshot", async () => {
    const esxi = fakeEsxi();
    const journal = memoryJournal();
    const err = await runVmBackup(input('require'), deps(esxi.port, journal, [])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmBackupError);
    expect((err as VmBackupError).retriable).toBe(false);
    expect((err as Error).message).toBe('quiescing the guest failed and the job requires it: fake ESXi: VSS writer SqlServerWriter failed');
    expect(esxi.snapshots.size).toBe(0);
    expect((await repo.listRestorePoints()).length).toBe(0);
  });
});
