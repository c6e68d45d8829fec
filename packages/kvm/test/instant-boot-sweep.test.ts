/**
 * The sweep's care about which process it kills, with real processes: a QEMU
 * a controller started but died before journalling is found by its command
 * line (it names the journal's QMP socket) and killed; a pid recorded in a
 * journal that now belongs to another process (different start time) is left
 * alone; and a folder holding only a half-written first journal goes.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSameProcess, processIdentity, startQemu, sweepInstantBoots, JOURNAL_FILE, type InstantBootJournal, type ProcessIdentity } from '../src/index.ts';

/** A controller identity no live process has (pid 1's identity with a start time it never had). */
const DEAD_CONTROLLER: ProcessIdentity = { pid: 1, startTicks: -1, cmdline: ['vaultline-controller-that-died'] };

function journalFor(workDir: string, qemu: ProcessIdentity | null): InstantBootJournal {
  return {
    version: 1,
    state: 'running',
    createdAt: new Date().toISOString(),
    ref: { vmId: 'vm', id: 'point' },
    controller: DEAD_CONTROLLER,
    nbdSocket: path.join(workDir, 'nbd.sock'),
    qmpSocket: path.join(workDir, 'qmp.sock'),
    serialLog: path.join(workDir, 'serial.log'),
    overlays: [{ diskKey: '2000', path: path.join(workDir, 'disk0-2000.qcow2'), driveId: 'disk0' }],
    qemu,
    mirror: null,
  };
}

describe('sweepInstantBoots: which processes it kills', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'vaultline-ib-sweep-'));
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('kills a QEMU that was never journalled, found by the QMP socket on its command line', async () => {
    const workDir = path.join(root, 'unjournalled');
    await mkdir(workDir);
    const j = journalFor(workDir, null);
    await writeFile(path.join(workDir, JOURNAL_FILE), JSON.stringify(j));
    await writeFile(j.overlays[0]!.path, 'overlay');
    const q = await startQemu({ memoryMiB: 32, cpus: 1, drives: [], serialLog: j.serialLog, qmpSocket: j.qmpSocket });
    const id = (await processIdentity(q.pid))!;
    const report = await sweepInstantBoots(root);
    expect(report.swept.find((s) => s.workDir === workDir)?.killed).toEqual([q.pid]);
    expect((await q.exited).signal).toBe('SIGKILL');
    expect(await isSameProcess(id)).toBe(false);
    expect(existsSync(workDir)).toBe(false);
  }, 60_000);

  it('leaves alone a process that took over a journalled pid (different start time)', async () => {
    const workDir = path.join(root, 'reused-pid');
    await mkdir(workDir);
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const real = (await processIdentity(other.pid!))!;
      // As if QEMU had had this pid before a reboot: same pid and command line, another start time.
      await writeFile(path.join(workDir, JOURNAL_FILE), JSON.stringify(journalFor(workDir, { ...real, startTicks: real.startTicks - 1 })));
      const report = await sweepInstantBoots(root);
      expect(report.swept.find((s) => s.workDir === workDir)?.killed).toEqual([]);
      expect(await isSameProcess(real)).toBe(true);
      expect(existsSync(workDir)).toBe(false);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('removes a folder that holds only a half-written first journal, and leaves other folders alone', async () => {
    const half = path.join(root, 'half');
    await mkdir(half);
    await writeFile(path.join(half, `${JOURNAL_FILE}.tmp`), '{"version":1,"sta');
    const foreign = path.join(root, 'not-an-instant-boot');
    await mkdir(foreign);
    await writeFile(path.join(foreign, 'data.txt'), 'keep me');
    await sweepInstantBoots(root);
    expect(existsSync(half)).toBe(false);
    expect(existsSync(path.join(foreign, 'data.txt'))).toBe(true);
  });
});
