/**
 * Instant recovery carried out by the Transporter's service from the `instant_recoveries` rows, against the lab
 * vCenter with a real backup of a lab VM: request → running (the VM registered from the NFS datastore, powered on,
 * reading the restore point bit for bit, the repository under a shared lock), discard, migrate, a name that exists,
 * and a restart that serves a running recovery again.
 *
 * The NFS transport is a stand-in (`LabExports`, named in the titles): it writes the export's base files, read from
 * the repository through the service's readers, into the folder the lab mounts as the NAS datastore, so these tests
 * need neither root nor ports 111/2049 and run beside others. The whole product over real NFS (the Transporter's
 * server, mounted by the lab vCenter's own NFSv3 client) is e2e/tests/9-zzx-instant-recovery.spec.ts.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { applianceKeyUnsealer } from '@vaultline/appliance';
import type { InstantRecoveryState, RunEvent } from '@vaultline/contracts';
import { LabExports } from '@vaultline/instant/testing';
import { memoryLogger } from '@vaultline/logger';
import { connectRedis, EventBus, redisReady, TransporterRegistry } from '@vaultline/queue';
import type { VSphereClient } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreClientSession } from '../src/adapters/vsphere-port.ts';
import { InstantRecoveryService } from '../src/instant/index.ts';
import { spawnTransporter, startBench, type Bench, type BenchPoint } from './fixture.ts';

const MiB = 1024 * 1024;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  s.close();
  return port;
}

describe('instant recovery through the Transporter service (lab vCenter; lab stand-in for ESXi\'s NFS client)', () => {
  let b: Bench;
  let session: RestoreClientSession;
  let client: VSphereClient;
  let point: BenchPoint;
  let exportsHost: LabExports;
  let service: InstantRecoveryService;
  let inv: { host: string; hostName: string; local: string; localName: string };
  const events: RunEvent[] = [];
  const root = () => path.join(b.dataDir, 'instant');

  const newService = () =>
    new InstantRecoveryService({
      db: b.db,
      transporterId: b.transporterId,
      unseal: applianceKeyUnsealer(b.secretKey),
      root: root(),
      exports: exportsHost,
      connect: (vc) => b.connector.restoreSession(vc),
      // The lab's host names do not resolve: the addresses are listed, as VAULTLINE_NFS_CLIENTS does.
      nfsClients: ['127.0.0.1'],
      publish: (e) => void events.push(e),
      log: memoryLogger('instant').log,
      pollMs: 200,
    });

  /** A request as the Director stores it (POST /api/instant-recoveries). */
  const request = async (name: string) => {
    const rp = await b.db.restorePoint.findUniqueOrThrow({ where: { id: point.rowId } });
    const row = await b.db.instantRecovery.create({
      data: { name, restorePointId: rp.id, restorePointRef: rp.id, sourceVm: rp.vmName, restorePointTime: rp.createdAt, vcenterId: b.vcenterId, hostMoref: inv.host, hostName: inv.host, createdBy: 'test' },
    });
    service.nudge();
    return row.id;
  };
  /** The row once it is in one of `states` with no action pending (a failed action leaves it running, with an error). */
  const until = async (id: string, states: InstantRecoveryState[]) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const row = await b.db.instantRecovery.findUniqueOrThrow({ where: { id } });
      if (states.includes(row.state as InstantRecoveryState) && row.pendingAction === null) return row;
      if (Date.now() > deadline) throw new Error(`instant recovery ${id} is ${row.state} (${row.detail ?? ''} ${row.error ?? ''}), not ${states.join('/')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const act = async (id: string, data: { pendingAction: 'migrate'; pendingDatastore: string } | { pendingAction: 'discard' }) => {
    await b.db.instantRecovery.update({ where: { id }, data });
    service.nudge();
  };
  const sharedLocks = async () => {
    const repo = await b.openRepository();
    try {
      return (await repo.locks.list()).filter((l) => l.kind === 'shared' && l.purpose.startsWith('instant recovery'));
    } finally {
      await repo.close();
    }
  };
  const waitFor = async <T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > deadline) {
        const rows = await b.db.instantRecovery.findMany({ select: { name: true, state: true, error: true } });
        throw new Error(`timed out waiting for ${what}; the recoveries: ${JSON.stringify(rows)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** The real Transporter process (src/main.ts) with VAULTLINE_NFS_ADDRESS: its own NFS server on free ports. */
  const spawnWithNfs = async (namespace: string) => {
    const [port, portmap] = [await freePort(), await freePort()];
    // spawnTransporter passes this process's environment on: these are set only around the call.
    const nfsEnv = { VAULTLINE_NFS_ADDRESS: '127.0.0.1', VAULTLINE_NFS_PORT: String(port), VAULTLINE_NFS_PORTMAP_PORT: String(portmap), VAULTLINE_NFS_CLIENTS: '127.0.0.1' };
    Object.assign(process.env, nfsEnv);
    try {
      return { child: spawnTransporter(b, { namespace, dataDir: b.dataDir, redisUrl: REDIS_URL }), port };
    } finally {
      for (const k of Object.keys(nfsEnv)) delete process.env[k];
    }
  };
  /** Nothing of any recovery left: no NAS datastore, no export, no folder, no lock. */
  const expectNothingLeft = async () => {
    const all = await client.inventory.all();
    expect(all.datastores.filter((d) => d.name.startsWith('vaultline-')).map((d) => d.name)).toEqual([]);
    expect([...exportsHost.served.keys()]).toEqual([]);
    expect(fs.readdirSync(path.join(root(), b.vcenterId))).toEqual([]);
    expect(await sharedLocks()).toEqual([]);
  };

  beforeAll(async () => {
    b = await startBench();
    session = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
    client = session.client;
    exportsHost = new LabExports(b.lab);
    await b.lab.createVm({ name: 'ir-app', cbt: true, cpus: 2, memoryMiB: 2048, nics: ['VM Network'], disks: [{ capacityBytes: 16 * MiB }] });
    await b.lab.guestWrite('ir-app', 0, [
      { offset: 0, length: 2 * MiB, pattern: 'random', seed: 5 },
      { offset: 9 * MiB + 4096, length: MiB, pattern: 'text', seed: 6 },
    ]);
    point = await b.backupPoint('ir-app', 1);
    const all = await client.inventory.all();
    const host = all.clusters[0]!.hosts[0]!;
    const local = all.datastores.find((x) => x.name === b.lab.datastores[0]!.name)!;
    inv = { host, hostName: all.hosts.find((h) => h.moref === host)!.name, local: local.moref, localName: local.name };
    fs.mkdirSync(path.join(root(), b.vcenterId), { recursive: true });
    service = newService();
    await service.start();
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
    await session?.close();
    await b?.close();
  });

  it('request → running: claimed, the VM registered from the NFS datastore on the host and powered on, reading the restore point bit for bit, under a shared lock', async () => {
    const id = await request('ir-app (recovered)');
    const row = await until(id, ['running', 'failed']);
    expect(row.error).toBeNull();
    expect(row).toMatchObject({ state: 'running', transporterId: b.transporterId, hostName: inv.hostName, detail: null });
    expect(row.datastoreName).toMatch(/^vaultline-/);
    const vm = await b.lab.getVm('ir-app (recovered)');
    expect(vm.powerState).toBe('poweredOn');
    expect(vm.disks[0]!.fileName.startsWith(`[${row.datastoreName}] `)).toBe(true);
    expect((await client.inventory.vm(vm.moref)).host).toBe(inv.host);
    expect(await client.vms.instantRecoveryIdOf(vm.moref)).toBe(id);
    expect(await b.lab.diskSha256('ir-app (recovered)', 0)).toBe(point.truth[0]);
    expect((await sharedLocks()).map((l) => l.purpose)).toEqual([`instant recovery ir-app (recovered) (${id})`]);
    expect(events.filter((e) => e.type === 'instant-recovery.changed' && e.id === id).map((e) => (e as { state: string }).state)).toContain('running');

    await act(id, { pendingAction: 'discard' });
    const done = await until(id, ['discarded', 'failed', 'running']);
    expect([done.state, done.error]).toEqual(['discarded', null]);
    expect((await client.inventory.all()).vms.some((v) => v.name === 'ir-app (recovered)')).toBe(false);
    await expectNothingLeft();
  });

  it('migrate: to a datastore that is not there it stays running, saying why; to the local datastore the running VM moves and keeps running; nothing of the recovery is left', async () => {
    const id = await request('ir-app (migrated)');
    expect((await until(id, ['running', 'failed'])).state).toBe('running');
    await act(id, { pendingAction: 'migrate', pendingDatastore: 'datastore-nope' });
    const refused = await until(id, ['running', 'failed']);
    expect(refused.state).toBe('running');
    expect(refused.error).toBe(
      'migration to datastore-nope failed: datastore datastore-nope is not in the inventory of lab; ir-app (migrated) still runs from the restore point (try again, or discard it)',
    );
    await act(id, { pendingAction: 'migrate', pendingDatastore: inv.local });
    const done = await until(id, ['migrated', 'failed']);
    expect(done).toMatchObject({ state: 'migrated', migratedTo: inv.localName, error: null, pendingAction: null });
    const vm = await b.lab.getVm('ir-app (migrated)');
    expect(vm.powerState).toBe('poweredOn');
    expect(vm.disks[0]!.fileName.startsWith(`[${inv.localName}] `)).toBe(true);
    expect(await b.lab.diskSha256('ir-app (migrated)', 0)).toBe(point.truth[0]);
    await expectNothingLeft();
  });

  it('a name that already exists in vSphere: failed, saying so, and nothing was created', async () => {
    const vmsBefore = (await client.inventory.all()).vms.length;
    const id = await request('ir-app');
    const row = await until(id, ['failed', 'running']);
    expect(row.state).toBe('failed');
    expect(row.error).toBe(`a VM named ir-app already exists in lab; choose another name (nothing was created)`);
    expect((await client.inventory.all()).vms.length).toBe(vmsBefore);
    await expectNothingLeft();
  });

  it('a restart serves a running recovery again (stopping does not discard it), and it can then be discarded', async () => {
    const id = await request('ir-app (survives)');
    expect((await until(id, ['running', 'failed'])).state).toBe('running');
    await service.stop();
    // Stopped: no longer served by this process, but nothing was undone; the VM runs on.
    expect((await sharedLocks()).length).toBe(0);
    expect((await b.db.instantRecovery.findUniqueOrThrow({ where: { id } })).state).toBe('running');
    expect((await b.lab.getVm('ir-app (survives)')).powerState).toBe('poweredOn');
    exportsHost.served.clear(); // the stand-in of a process that ended: its NFS server is gone with it

    service = newService();
    await service.start();
    expect([...exportsHost.served.keys()]).toEqual([`/vaultline/${id}`]);
    expect((await sharedLocks()).length).toBe(1);
    expect(await b.lab.diskSha256('ir-app (survives)', 0)).toBe(point.truth[0]);
    await act(id, { pendingAction: 'discard' });
    expect((await until(id, ['discarded', 'failed'])).state).toBe('discarded');
    await expectNothingLeft();
  });

  it('the Transporter process with VAULTLINE_NFS_ADDRESS: serves NFS, advertises instant recovery, resumes a running recovery; SIGTERM leaves it running; the Director\'s event has it discarded (lab stand-in for ESXi\'s NFS client)', async () => {
    const id = await request('ir-app (process)');
    expect((await until(id, ['running', 'failed'])).state).toBe('running');
    await service.stop();
    exportsHost.served.clear(); // from here on the process serves it from its real NFS server

    const namespace = `ir-${randomUUID().slice(0, 8)}`;
    const redis = connectRedis(REDIS_URL);
    await redisReady(redis);
    const registry = new TransporterRegistry(redis, 500, { namespace });
    const bus = new EventBus(REDIS_URL, namespace);
    let { child, port } = await spawnWithNfs(namespace);
    try {
      const me = await waitFor('the heartbeat', async () => (await registry.list()).find((t) => t.id === b.transporterId && t.online));
      expect(me.capabilities.instantRecovery).toEqual({ nfsAddress: '127.0.0.1' });
      // Served again by the child: its shared lock on the repository, its NFS server answering.
      const [lock] = await waitFor('the resumed recovery\'s lock', async () => {
        const l = await sharedLocks();
        return l.length === 1 && l[0]!.pid === child.pid && l;
      });
      expect(lock!.purpose).toBe(`instant recovery ir-app (process) (${id})`);
      const sock = net.connect(port, '127.0.0.1');
      await once(sock, 'connect');
      sock.destroy();

      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
      expect((await b.db.instantRecovery.findUniqueOrThrow({ where: { id } })).state).toBe('running');
      expect((await b.lab.getVm('ir-app (process)')).powerState).toBe('poweredOn');
      expect(await sharedLocks()).toEqual([]);

      ({ child, port } = await spawnWithNfs(namespace));
      await waitFor('the resumed recovery\'s lock', async () => (await sharedLocks()).some((l) => l.pid === child.pid));
      // As POST /api/instant-recoveries/:id/discard does: the action on the row, then the event.
      await b.db.instantRecovery.update({ where: { id }, data: { pendingAction: 'discard' } });
      await bus.publish({ type: 'instant-recovery.requested', id });
      expect((await until(id, ['discarded', 'failed'])).state).toBe('discarded');
      expect((await client.inventory.all()).vms.some((v) => v.name === 'ir-app (process)')).toBe(false);
      await b.lab.nasExport('127.0.0.1', `/vaultline/${id}`, null); // the stand-in's half (the lab's mount source)
      await expectNothingLeft();
    } finally {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await bus.close();
      redis.disconnect();
    }
  });
});

