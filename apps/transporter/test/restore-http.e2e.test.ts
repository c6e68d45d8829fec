/**
 * A vCenter reachable only over plain HTTP (the lab with `http: true`): the
 * network write transport is NBD over HTTP, chosen automatically with its
 * reason, and a manual NBDSSL is refused before anything is created.
 */
import { randomUUID } from 'node:crypto';
import { restoreVm, SAN_WRITE_REASON } from '@vaultline/core';
import { memoryLogger } from '@vaultline/logger';
import { Repository } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import type { RestoreClientSession } from '../src/adapters/vsphere-port.ts';
import { isRoot, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

describe.runIf(isRoot)('restore from an HTTP-only vCenter writes over NBD (lab vCenter over plain HTTP)', () => {
  let b: Bench;
  let session: RestoreClientSession;
  let repo: Repository;
  let point: { id: string; vmId: string; truth: string[] };

  beforeAll(async () => {
    b = await startBench({ lab: { http: true } });
    expect(b.lab.url).toMatch(/^http:/);
    session = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
    await b.lab.createVm({ name: 'old01', cbt: true, disks: [{ capacityBytes: 6 * MiB, controller: 'ide' }, { capacityBytes: 4 * MiB }] });
    await b.lab.guestWrite('old01', 0, [{ offset: 1 * MiB, length: 2 * MiB, pattern: 'random', seed: 61 }]);
    await b.lab.guestWrite('old01', 1, [{ offset: 0, length: 1 * MiB, pattern: 'text', seed: 62 }]);
    const truth = [await b.lab.diskSha256('old01', 0), await b.lab.diskSha256('old01', 1)];
    const { runId } = await b.newRun(['old01'], 'nbd');
    await b.runAll(runId);
    const item = await b.db.runVm.findFirstOrThrow({ where: { runId } });
    expect(item.status, item.error ?? '').toBe('succeeded');
    const row = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: item.id } });
    point = { id: row.repoPointId, vmId: row.vmInstanceUuid, truth };
    repo = await Repository.open(b.repoDir);
  });
  afterAll(async () => {
    await repo?.close();
    await session?.close();
    await b?.close();
  });

  const deps = () => ({ vsphere: session.port, journal: pgJournal(b.db, b.transporterId, b.journalKey), log: memoryLogger('r').log, devices: b.devices, proxy: session.facts });
  const input = (name: string, transport: 'automatic' | 'nbd' | 'nbdssl') => ({ repo, ref: { vmId: point.vmId, id: point.id }, name, restoreId: randomUUID(), transport, vcenterId: b.vcenterId });

  it('automatic: the IDE disk goes over NBD (HTTP) with the reasons, the SCSI disk through HotAdd; both bit-exact', async () => {
    const r = await restoreVm(input('old01-auto', 'automatic'), deps());
    expect(r.disks.map((d) => [d.transport, d.reasons])).toEqual([
      ['nbd', [SAN_WRITE_REASON, 'HotAdd: disk on IDE controller', "NBD: write over the datastore's HTTP interface"]],
      ['hotadd', [SAN_WRITE_REASON, 'HotAdd: attach the new disk to proxy VM vaultline-proxy and write it there']],
    ]);
    expect(await b.lab.diskSha256('old01-auto', 0)).toBe(point.truth[0]);
    expect(await b.lab.diskSha256('old01-auto', 1)).toBe(point.truth[1]);
  });

  it('manual NBD writes both disks over HTTP; manual NBDSSL is refused before anything is created', async () => {
    const r = await restoreVm(input('old01-nbd', 'nbd'), deps());
    expect(r.disks.map((d) => [d.transport, d.reasons])).toEqual([
      ['nbd', ['NBD: chosen manually']],
      ['nbd', ['NBD: chosen manually']],
    ]);
    expect(r.disks.map((d) => d.sha256)).toEqual(point.truth);
    expect(await b.lab.diskSha256('old01-nbd', 1)).toBe(point.truth[1]);
    const before = (await session.client.inventory.vms()).length;
    const err = await restoreVm(input('old01-ssl', 'nbdssl'), deps()).catch((e: unknown) => e);
    expect((err as Error).message).toBe('disk Hard disk 1: NBDSSL: the vCenter is configured over plain HTTP (transport is manual: nbdssl). Nothing was created.');
    expect((await session.client.inventory.vms()).length).toBe(before);
    expect(await b.db.cleanupEntry.count({ where: { resolvedAt: null } })).toBe(0);
  });
});
