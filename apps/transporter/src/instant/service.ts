/**
 * Instant recovery to vSphere on this Transporter: the `instant_recoveries` rows are the truth. It claims rows in
 * `requested` (or preassigned to it), starts them with @vaultline/instant, and carries out the actions the Director
 * records on its own rows (`pendingAction`), recording each step in state/detail/error. It polls, and the
 * Director's `instant-recovery.requested` event makes it look at once.
 *
 * Each recovery's folder is `<root>/<vCenter id>/<recovery id>` (the engine's journal inside), so that at start
 * the engine's sweep runs per vCenter with that vCenter's client: what a killed process left half done is undone,
 * and what was running is served again. Stopping only stops serving: the VMs run from the exports, so nothing is
 * discarded, and the next start resumes them.
 */
import { lookup } from 'node:dns/promises';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Unsealer } from '@vaultline/appliance';
import type { InstantRecoveryState, RunEvent } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { InstantRecovery, readJournal, recoveryTree, sweepInstantRecoveries, type ExportHost, type VSpherePort } from '@vaultline/instant';
import type { Logger } from '@vaultline/logger';
import type { VSphereClient } from '@vaultline/vsphere';
import type { VCenterRow } from '../sessions.ts';
import { openServedPoint, type ServedPoint } from './served-point.ts';

/** What an instant recovery needs of a vCenter: the engine's calls and the inventory to place the VM. */
export type InstantVSphere = VSpherePort & Pick<VSphereClient, 'inventory'>;

export interface InstantServiceDeps {
  db: Db;
  transporterId: string;
  /** Opens repository secrets and vCenter passwords (appliance key, or a remote Transporter's own key). */
  unseal: Unsealer;
  /** VAULTLINE_DATA_DIR/instant: one folder per recovery, under its vCenter's id. */
  root: string;
  /** Where the exports are served: the Transporter's NFS server (nfsExportHost). */
  exports: ExportHost;
  /** A logged-in client for one step (its own session, closed after it): recoveries run for days, sessions do not. */
  connect(vcenter: VCenterRow): Promise<{ client: InstantVSphere; close(): Promise<void> }>;
  /** The addresses an ESXi host's name stands for: NFS clients its export lets in (default: DNS). */
  hostAddresses?: (hostName: string) => Promise<string[]>;
  /**
   * Addresses every export lets in besides those (VAULTLINE_NFS_CLIENTS): ESXi often mounts NFS from a storage
   * VMkernel interface whose address the host's name does not resolve to, or the name does not resolve here at all.
   */
  nfsClients?: string[];
  publish(e: RunEvent): void;
  log: Logger;
  pollMs?: number;
}

type Row = NonNullable<Awaited<ReturnType<typeof loadRow>>>;
type RowUpdate = { state?: InstantRecoveryState; detail?: string | null; error?: string | null; datastoreName?: string | null; migratedTo?: string | null; hostName?: string; pendingAction?: null; pendingDatastore?: null };

const loadRow = (db: Db, id: string) =>
  db.instantRecovery.findUnique({ where: { id }, include: { vcenter: true, restorePoint: { include: { repository: true } } } });

/** A recovery's folder is named by its row's id. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const message = (err: unknown) => (err as Error)?.message ?? String(err);

/** A host's name as DNS answers it here (an IP address answers itself). */
async function dnsAddresses(hostName: string): Promise<string[]> {
  try {
    return [...new Set((await lookup(hostName, { all: true })).map((a) => a.address))];
  } catch (err) {
    throw new Error(
      `host ${hostName} does not resolve from this Transporter (${(err as NodeJS.ErrnoException).code ?? message(err)}), and its NFS export lets in only the host's addresses: make the host's name resolve here, or list the addresses its NFS traffic comes from in VAULTLINE_NFS_CLIENTS`,
    );
  }
}

export class InstantRecoveryService {
  /** Restore points held open for the recoveries this process serves, by recovery id. */
  private readonly served = new Map<string, ServedPoint>();
  /** The step under way per recovery: one at a time each. */
  private readonly busy = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(private readonly deps: InstantServiceDeps) {}

  /** Resumes what an earlier process left (see the file comment), then polls. */
  async start(): Promise<void> {
    await this.resume();
    this.schedule();
  }

  /** Look now (the Director's event), instead of at the next poll. */
  nudge(): void {
    if (this.stopped) return;
    if (this.ticking) this.again = true;
    else void this.tick();
  }

  /** Stops polling, lets the steps under way finish, and stops serving; the recoveries stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
    await Promise.allSettled([...this.busy.values()]);
    for (const [id, point] of this.served) {
      await point.close();
      this.served.delete(id);
    }
  }

  /** One look at the rows: claims requests, runs pending actions. Resolves when both are started (not finished). */
  tick(): Promise<void> {
    this.ticking ??= this.look()
      .catch((err: unknown) => this.deps.log.warn({ err: message(err) }, 'instant recovery poll failed; will retry'))
      .finally(() => {
        this.ticking = null;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.tick();
        }
      });
    return this.ticking;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, this.deps.pollMs ?? 2_000);
    this.timer.unref();
  }

  private async look(): Promise<void> {
    const { db, transporterId: me } = this.deps;
    const mine = { OR: [{ transporterId: null }, { transporterId: me }] };
    for (const { id } of await db.instantRecovery.findMany({ where: { state: 'requested', ...mine }, orderBy: { createdAt: 'asc' }, select: { id: true } })) {
      if (this.stopped) return;
      // Atomic: of several Transporters, one gets it.
      const claimed = await db.instantRecovery.updateMany({ where: { id, state: 'requested', ...mine }, data: { transporterId: me, state: 'starting', detail: 'taken by this Transporter', error: null } });
      if (claimed.count === 1) {
        this.deps.publish({ type: 'instant-recovery.changed', id, state: 'starting' });
        this.run(id, () => this.startOne(id));
      }
    }
    const pending = await db.instantRecovery.findMany({ where: { transporterId: me, state: 'running', pendingAction: { not: null } }, select: { id: true, pendingAction: true } });
    for (const r of pending) {
      if (this.stopped) return;
      if (!this.busy.has(r.id)) this.run(r.id, () => (r.pendingAction === 'migrate' ? this.migrateOne(r.id) : this.discardOne(r.id)));
    }
  }

  private run(id: string, step: () => Promise<void>): void {
    if (this.busy.has(id)) return;
    const p = step()
      .catch((err: unknown) => this.deps.log.error({ err: message(err), id }, 'instant recovery step failed unexpectedly'))
      .finally(() => this.busy.delete(id));
    this.busy.set(id, p);
  }

  private async update(id: string, data: RowUpdate): Promise<void> {
    const row = await this.deps.db.instantRecovery.update({ where: { id }, data, select: { state: true } });
    this.deps.publish({ type: 'instant-recovery.changed', id, state: row.state as InstantRecoveryState });
  }

  private workDir(row: { vcenterId: string; id: string }): string {
    return path.join(this.deps.root, row.vcenterId, row.id);
  }

  private async allowedClients(hostName: string): Promise<string[]> {
    const listed = this.deps.nfsClients ?? [];
    try {
      return [...new Set([...(await (this.deps.hostAddresses ?? dnsAddresses)(hostName)), ...listed])];
    } catch (err) {
      if (listed.length) return listed;
      throw err;
    }
  }

  /** Removes a recovery's folder once its journal says it is over (or it never got one). */
  private async removeIfOver(workDir: string): Promise<boolean> {
    const j = await readJournal(workDir).catch(() => null);
    if (j && j.state !== 'discarded' && j.state !== 'migrated') return false;
    await rm(workDir, { recursive: true, force: true });
    return true;
  }

  private async release(id: string): Promise<void> {
    await this.served.get(id)?.close();
    this.served.delete(id);
  }

  private async startOne(id: string): Promise<void> {
    const row = await loadRow(this.deps.db, id);
    if (!row) return;
    const workDir = this.workDir(row);
    let session: Awaited<ReturnType<InstantServiceDeps['connect']>> | null = null;
    try {
      if (!row.restorePoint) throw new Error(`the restore point of ${row.sourceVm} taken ${row.restorePointTime.toISOString()} no longer exists; nothing was created`);
      await this.update(id, { detail: `opening the restore point of ${row.sourceVm}` });
      this.served.set(id, await openServedPoint(row.restorePoint, this.deps.unseal, `instant recovery ${row.name} (${id})`));
      const point = this.served.get(id)!;
      session = await this.deps.connect(row.vcenter);
      const { client } = session;
      const inv = await client.inventory.all();
      const host = inv.hosts.find((h) => h.moref === row.hostMoref);
      if (!host) throw new Error(`host ${row.hostMoref} is not in the inventory of ${row.vcenter.name}; choose a host from the placement list (nothing was created)`);
      await this.update(id, { hostName: host.name });
      if (inv.vms.some((v) => v.name === row.name)) throw new Error(`a VM named ${row.name} already exists in ${row.vcenter.name}; choose another name (nothing was created)`);
      const folder = row.folder ?? inv.datacenters.find((d) => d.path === host.datacenter || d.moref === host.datacenter)?.vmFolder;
      if (!folder) throw new Error(`the datacenter of host ${host.name} has no VM folder in the inventory; choose a folder (nothing was created)`);
      const resourcePool =
        row.resourcePool ??
        inv.clusters.find((c) => c.hosts.includes(host.moref))?.resourcePool ??
        (await client.inventory.placementTargets()).resourcePools.find((p) => p.hosts.includes(host.moref))?.moref;
      if (!resourcePool) throw new Error(`host ${host.name} has no resource pool in the inventory; choose one (nothing was created)`);
      const allowedClients = await this.allowedClients(host.name);
      await this.update(id, { detail: `exporting the restore point over NFS and mounting it on ${host.name}` });
      const recovery = await InstantRecovery.start({
        workDir,
        id,
        restorePoint: point.ref,
        hardware: point.hardware,
        disks: point.disks,
        target: { host: host.moref, folder, resourcePool, name: row.name, powerOn: row.powerOn, connectNics: row.connectNics },
        vsphere: client,
        exports: this.deps.exports,
        allowedClients,
      });
      await this.update(id, { state: 'running', detail: null, error: null, datastoreName: recovery.state.datastoreName });
      this.deps.log.info({ id, name: row.name, host: host.name }, 'instant recovery running');
    } catch (err) {
      // The engine undid what it had done; its folder goes unless the undo itself failed (the next start retries it).
      const gone = await this.removeIfOver(workDir);
      if (gone) await this.release(id);
      const left = gone ? '' : ' Undoing it did not finish: the Transporter tries again when it restarts.';
      await this.update(id, { state: 'failed', detail: null, error: `${message(err)}${left}` });
      this.deps.log.warn({ id, name: row.name, err: message(err) }, 'instant recovery failed to start');
    } finally {
      await session?.close().catch(() => undefined);
    }
  }

  /** Takes a pending action of a running row as this step's own (the Director cannot change it while it runs). */
  private async take(id: string, action: 'migrate' | 'discard', state: InstantRecoveryState, detail: string): Promise<boolean> {
    const { count } = await this.deps.db.instantRecovery.updateMany({
      where: { id, transporterId: this.deps.transporterId, state: 'running', pendingAction: action },
      data: { state, detail, error: null, pendingAction: null, pendingDatastore: null },
    });
    if (count === 1) this.deps.publish({ type: 'instant-recovery.changed', id, state });
    return count === 1;
  }

  private async migrateOne(id: string): Promise<void> {
    const row = await loadRow(this.deps.db, id);
    if (!row?.pendingDatastore) return;
    const target = row.pendingDatastore;
    if (!(await this.take(id, 'migrate', 'migrating', `moving ${row.name} to datastore ${target} (Storage vMotion)`))) return;
    const workDir = this.workDir(row);
    let session: Awaited<ReturnType<InstantServiceDeps['connect']>> | null = null;
    try {
      session = await this.deps.connect(row.vcenter);
      const ds = (await session.client.inventory.all()).datastores.find((d) => d.moref === target);
      if (!ds) throw new Error(`datastore ${target} is not in the inventory of ${row.vcenter.name}`);
      await this.update(id, { detail: `moving ${row.name} to ${ds.name} (Storage vMotion), then merging its writes` });
      const journal = await readJournal(workDir);
      if (!journal) throw new Error(`this Transporter holds no journal of it (${workDir})`);
      await InstantRecovery.resume(workDir, journal, session.client, this.deps.exports).migrate(target);
      await this.release(id);
      await rm(workDir, { recursive: true, force: true });
      await this.update(id, { state: 'migrated', detail: null, migratedTo: ds.name });
      this.deps.log.info({ id, name: row.name, datastore: ds.name }, 'instant recovery migrated');
    } catch (err) {
      // The VM still runs from the export (the engine moves it in one vSphere task): it can be tried again.
      await this.update(id, { state: 'running', detail: null, error: `migration to ${target} failed: ${message(err)}; ${row.name} still runs from the restore point (try again, or discard it)` });
      this.deps.log.warn({ id, err: message(err) }, 'instant recovery migration failed');
    } finally {
      await session?.close().catch(() => undefined);
    }
  }

  private async discardOne(id: string): Promise<void> {
    const row = await loadRow(this.deps.db, id);
    if (!row) return;
    if (!(await this.take(id, 'discard', 'discarding', `powering off and unregistering ${row.name}, unmounting its datastore`))) return;
    const workDir = this.workDir(row);
    let session: Awaited<ReturnType<InstantServiceDeps['connect']>> | null = null;
    try {
      const journal = await readJournal(workDir);
      if (journal) {
        session = await this.deps.connect(row.vcenter);
        await InstantRecovery.resume(workDir, journal, session.client, this.deps.exports).discard();
      }
      await this.release(id);
      await rm(workDir, { recursive: true, force: true });
      await this.update(id, { state: 'discarded', detail: null });
      this.deps.log.info({ id, name: row.name }, 'instant recovery discarded');
    } catch (err) {
      // Whatever is left is still journaled: discarding again picks up from there.
      await this.update(id, { state: 'running', detail: null, error: `discard failed: ${message(err)}; try again` });
      this.deps.log.warn({ id, err: message(err) }, 'instant recovery discard failed');
    }
    await session?.close().catch(() => undefined);
  }

  /**
   * After a restart: per vCenter folder, the engine's sweep undoes half-done starts and discards and hands back the
   * running recoveries, which are served again (a migration under way is asked for again). Rows of this Transporter
   * that were mid-step with nothing left on disk end as failed, saying so.
   */
  private async resume(): Promise<void> {
    const { db, log } = this.deps;
    const resumed = new Set<string>();
    // vCenters whose folders could not be looked at now: their rows are left alone until the next start.
    const unsettled = new Set<string>();
    for (const vcenterId of await readdir(this.deps.root).catch(() => [] as string[])) {
      if (!UUID.test(vcenterId)) continue;
      const dir = path.join(this.deps.root, vcenterId);
      const vc = await db.vCenter.findUnique({ where: { id: vcenterId } }).catch(() => null);
      if (!vc) {
        log.warn({ dir }, 'instant recoveries of a vCenter that is no longer registered are left as they are');
        continue;
      }
      let session: Awaited<ReturnType<InstantServiceDeps['connect']>> | null = null;
      try {
        session = await this.deps.connect(vc);
        const swept = await sweepInstantRecoveries(dir, session.client, this.deps.exports);
        for (const { workDir, journal } of swept.toResume) {
          try {
            await this.serveAgain(workDir, journal);
            resumed.add(journal.id);
          } catch (err) {
            log.error({ id: journal.id, err: message(err) }, 'instant recovery cannot be served again');
            await db.instantRecovery
              .updateMany({ where: { id: journal.id }, data: { error: `it could not be served again after the Transporter restarted: ${message(err)}; its VM cannot read its disks: discard it` } })
              .catch(() => undefined);
            resumed.add(journal.id);
          }
        }
        // Over (swept now, or finished just before the process stopped): the row says so, the folder goes.
        for (const name of await readdir(dir)) {
          if (!UUID.test(name)) continue;
          const workDir = path.join(dir, name);
          const j = await readJournal(workDir).catch(() => null);
          if (j && j.state !== 'discarded' && j.state !== 'migrated') continue;
          const row = await db.instantRecovery.findUnique({ where: { id: name }, select: { state: true } });
          if (row && ['starting', 'discarding', 'migrating', 'running'].includes(row.state)) {
            const final = j?.state === 'migrated' ? 'migrated' : row.state === 'discarding' ? 'discarded' : 'failed';
            await this.update(name, { state: final, detail: null, ...(final === 'failed' ? { error: `the Transporter stopped while it was ${row.state}; what had been done was undone` } : {}) });
          }
          await rm(workDir, { recursive: true, force: true });
        }
      } catch (err) {
        unsettled.add(vcenterId);
        log.warn({ vcenter: vc.name, err: message(err) }, 'instant recoveries of this vCenter were not resumed; will try at the next start');
      } finally {
        await session?.close().catch(() => undefined);
      }
    }
    const orphans = await db.instantRecovery.findMany({
      where: { transporterId: this.deps.transporterId, state: { in: ['starting', 'running', 'migrating', 'discarding'] } },
      select: { id: true, state: true, vcenterId: true },
    });
    for (const o of orphans.filter((x) => !resumed.has(x.id) && !unsettled.has(x.vcenterId))) {
      await this.update(o.id, { state: 'failed', detail: null, error: `the Transporter restarted while it was ${o.state} and holds nothing of it any more` });
    }
  }

  private async serveAgain(workDir: string, journal: NonNullable<Awaited<ReturnType<typeof readJournal>>>): Promise<void> {
    const row: Row | null = await loadRow(this.deps.db, journal.id);
    if (!row) throw new Error('its row is gone');
    if (!row.restorePoint) throw new Error(`the restore point of ${row.sourceVm} no longer exists`);
    const point = await openServedPoint(row.restorePoint, this.deps.unseal, `instant recovery ${row.name} (${row.id})`);
    try {
      // The overlay holds what ESXi wrote: only the base files are given again.
      const tree = recoveryTree(point.hardware, point.disks, { name: journal.name, recoveryId: journal.id });
      await this.deps.exports.add({ name: journal.exportName, writableDir: journal.overlayDir, baseFiles: tree.baseFiles, allowedClients: await this.allowedClients(row.hostName) });
    } catch (err) {
      await point.close();
      throw err;
    }
    this.served.set(row.id, point);
    if (journal.state === 'migrating' && journal.migratedTo) {
      // Stopped mid-migration: the loop carries on with it (the engine's migrate accepts a migrating journal).
      await this.deps.db.instantRecovery.update({ where: { id: row.id }, data: { state: 'running', pendingAction: 'migrate', pendingDatastore: journal.migratedTo } });
    } else if (row.state !== 'running') {
      await this.update(row.id, { state: 'running', detail: null });
    }
    this.deps.log.info({ id: row.id, name: row.name }, 'instant recovery served again');
  }
}
