/**
 * The ransomware signal end to end on a lab VM: its guest writes ordinary (log-like, compressible) data
 * across a few backups, then "encrypts its files" (overwrites them with high-entropy bytes). That backup's
 * restore point is flagged with what was measured against what, the item ends as a warning, and retention
 * of the VM is held: a point the job's keep-last policy would have pruned stays, across further backups,
 * until an operator releases the hold through the Director's API — after which the next backup prunes again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The Director is another app: its test helper starts the real process (src/server.ts), here on the bench's database.
import { startDirectorProcess } from '../../director/test/director-process.ts';
import { runOutcome, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;
const VM = 'fileserver';
/** The guest's files: 24 MiB at the start of its disk, rewritten by every round. */
const FILES = { offset: 0, length: 24 * MiB };

describe('ransomware signal: a lab VM whose guest switches to encrypting its files', () => {
  let b: Bench;
  const backup = async () => {
    const { runId } = await b.newRun([VM], 'nbdssl', { cbtSanityRate: 0, retention: { keepLast: 2, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 } });
    await b.runAll(runId);
    return runOutcome(b, runId);
  };
  const points = async () => (await b.db.restorePoint.findMany({ where: { vmName: VM }, orderBy: { createdAt: 'asc' } })).map((p) => p.repoPointId);
  const logText = (log: unknown) => (log as { message: string }[]).map((l) => l.message).join('\n');

  beforeAll(async () => {
    b = await startBench();
    await b.lab.createVm({ name: VM, cbt: true, powerOn: true, disks: [{ capacityBytes: 64 * MiB, datastore: 'datastore1' }] });
  });
  afterAll(async () => {
    await b?.close();
  });

  it('ordinary rounds are measured and not flagged; the encrypting round is flagged, warned about and holds retention', async () => {
    const ordinary: string[] = [];
    for (const seed of [1, 2, 3]) {
      await b.lab.guestWrite(VM, 0, [{ ...FILES, pattern: 'text', seed }]);
      const { vm, point } = await backup();
      expect(vm.status, `${vm.error ?? ''} ${logText(vm.log)}`).toBe('succeeded');
      expect(point!.ransomwareSuspect).toBe(false);
      const [disk] = point!.dataStats as { newRawBytes: number; newStoredBytes: number; highEntropyBytes: number; sampledBytes: number }[];
      // Text: compresses well and no sample is high-entropy.
      expect(disk!.newRawBytes).toBe(FILES.length);
      expect(disk!.newStoredBytes / disk!.newRawBytes).toBeLessThan(0.5);
      expect(disk!.highEntropyBytes).toBe(0);
      expect(disk!.sampledBytes).toBeGreaterThan(0);
      ordinary.push(point!.repoPointId);
    }
    // keepLast 2: the first point is gone already.
    expect(await points()).toEqual(ordinary.slice(1));

    await b.lab.guestWrite(VM, 0, [{ ...FILES, pattern: 'random', seed: 66 }]);
    const { vm, point } = await backup();
    expect(vm.status).toBe('warning');
    expect(point!.ransomwareSuspect).toBe(true);
    expect(point!.suspect).toBe(false);
    expect(point!.anomaly).toMatch(/^disk Hard disk 1: 100 % of 24 MiB of new data is high-entropy \(mean 7\.9\d bits\/byte\) and it compressed to 100 % of its size, against 0 % high-entropy \(\d\.\d\d bits\/byte\) compressing to \d+ % over the last 2 restore point\(s\) \(medians\)$/);
    const log = logText(vm.log);
    expect(log).toContain(`possible ransomware: ${point!.anomaly!}; this restore point is marked a ransomware suspect and retention of the VM in this repository is held until an operator releases it`);
    expect(log).toContain(`retention: held, nothing pruned: ransomware-suspect restore point(s) ${point!.repoPointId}`);
    // keepLast 2 would have pruned ordinary[1]: held, everything stays.
    expect(await points()).toEqual([...ordinary.slice(1), point!.repoPointId]);

    // The guest keeps working: the next ordinary backup is not flagged (it is compared with a baseline that includes
    // the spike, by medians) and retention is still held.
    await b.lab.guestWrite(VM, 0, [{ ...FILES, pattern: 'text', seed: 4 }]);
    const after = await backup();
    expect(after.point!.ransomwareSuspect).toBe(false);
    expect(after.vm.status).toBe('warning');
    expect(logText(after.vm.log)).toContain(`retention: held, nothing pruned: ransomware-suspect restore point(s) ${point!.repoPointId}`);
    expect(await points()).toEqual([...ordinary.slice(1), point!.repoPointId, after.point!.repoPointId]);

    // The operator sees it in the console's API and releases the hold there: a real Director process on this
    // database (its roles, schemas and audit are covered in apps/director retention-holds.test.ts).
    const director = await startDirectorProcess({ databaseUrl: () => b.database.url });
    try {
      const cookie = await director.signInAdmin();
      const api = (url: string, init: { method?: string; body?: string } = {}) => director.fetch(`${director.url}${url}`, { ...init, headers: { cookie, 'content-type': 'application/json' } });
      const listed = (await (await api(`/api/restore-points?vm=${VM}`)).json()) as { id: string; ransomwareSuspect: boolean; anomaly: string | null; holdReleasedAt: string | null }[];
      expect(listed.find((p) => p.id === point!.id)).toMatchObject({ ransomwareSuspect: true, anomaly: point!.anomaly, holdReleasedAt: null });
      const res = await api(`/api/restore-points/${point!.id}/release-hold`, { method: 'POST', body: JSON.stringify({ note: 'the guest was restored from the point before; checked clean' }) });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(await res.json()).toMatchObject({ id: point!.id, ransomwareSuspect: true, holdReleasedBy: 'admin' });
      expect(await b.db.auditEvent.count({ where: { action: 'restore-point.release-hold', actor: 'admin' } })).toBe(1);
    } finally {
      await director.stop();
    }
    // Released: the next backup prunes down to the policy again, and the flag stays on the point.
    await b.lab.guestWrite(VM, 0, [{ ...FILES, pattern: 'text', seed: 5 }]);
    const released = await backup();
    expect(released.vm.status, logText(released.vm.log)).toBe('succeeded');
    expect(await points()).toEqual([after.point!.repoPointId, released.point!.repoPointId]);
  });
});
