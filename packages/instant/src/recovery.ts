/**
 * Instant recovery to vSphere. `InstantRecovery.start` runs a backed-up VM on an ESXi host straight from a restore
 * point: the appliance exports the VM's folder over NFS (base extents read from the repository, everything else
 * in a writable overlay folder), the host mounts it as a datastore (CreateNasDatastore), the VM is registered
 * from the written .vmx and snapshotted at once, so that the guest's writes go to delta files in the overlay and
 * never touch the base, and powered on. Then either
 *  - `migrate`: Storage vMotion (RelocateVM_Task) copies the running VM, deltas included, to production storage;
 *    removing the snapshot there merges the writes into the disks; the datastore is unmounted and the export and
 *    the overlay go; or
 *  - `discard`: the VM is powered off and unregistered, the datastore unmounted, the export and overlay removed.
 *
 * A journal (journal.json in the recovery's folder, replaced atomically) records each step before it is taken
 * and what exists after it, so `sweepInstantRecoveries` can finish what a killed process left: a recovery that
 * never got running is undone, one being discarded is discarded, and one running or migrating is returned to be
 * served again (its VM runs from the export; sweeping it would pull its disks away). The VM is only ever
 * touched when its .vmx marker names this recovery.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { VSphereClient, HardwareDescription, WaitTaskOptions } from '@vaultline/vsphere';
import { recoveryTree, type BaseFile, type RecoveryDisk } from './tree.ts';

/** Where the exports are served: the appliance's NFS server (NfsServer), or in the lab a stand-in. */
export interface ExportHost {
  /** The server's address as ESXi hosts reach it. */
  readonly remoteHost: string;
  add(spec: { name: string; writableDir: string; baseFiles: BaseFile[]; allowedClients: string[] }): Promise<void>;
  remove(name: string): Promise<void>;
}

export type VSpherePort = Pick<VSphereClient, 'datastores' | 'vms' | 'snapshots'>;

export type RecoveryState = 'starting' | 'running' | 'migrating' | 'migrated' | 'discarding' | 'discarded';

export interface RecoveryJournal {
  id: string;
  state: RecoveryState;
  /** The VM's name in vSphere. */
  name: string;
  host: string;
  /** The export's path on the NFS server and the datastore's name in vSphere. */
  exportName: string;
  datastoreName: string;
  /** The overlay folder (inside the recovery's folder). */
  overlayDir: string;
  /** The restore point, for serving it again after a restart. */
  restorePoint: { vmId: string; id: string };
  vmx?: string | undefined;
  datastore?: string | undefined;
  vm?: string | undefined;
  snapshot?: string | undefined;
  /** Where the VM went (migrate). */
  migratedTo?: string | undefined;
  createdAt: string;
  updatedAt: string;
}

export const JOURNAL_FILE = 'journal.json';
const SNAPSHOT_NAME = 'vaultline-instant-recovery';

export interface StartOptions {
  /** This recovery's folder (created; must not hold a journal). Its parent is what the sweep looks at. */
  workDir: string;
  /** 1-40 characters of [a-z0-9-]: names the export, the datastore and the .vmx marker. */
  id: string;
  restorePoint: { vmId: string; id: string };
  hardware: HardwareDescription;
  disks: RecoveryDisk[];
  target: { host: string; folder: string; resourcePool: string; name: string; powerOn?: boolean | undefined; connectNics?: boolean | undefined; networkMap?: Readonly<Record<string, string>> | undefined };
  vsphere: VSpherePort;
  exports: ExportHost;
  /** The ESXi host's addresses: the only NFS clients let in. */
  allowedClients: string[];
  task?: WaitTaskOptions | undefined;
}

async function writeJournal(workDir: string, j: RecoveryJournal): Promise<void> {
  j.updatedAt = new Date().toISOString();
  const file = path.join(workDir, JOURNAL_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(j, null, 2), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

export async function readJournal(workDir: string): Promise<RecoveryJournal | null> {
  try {
    return JSON.parse(await readFile(path.join(workDir, JOURNAL_FILE), 'utf8')) as RecoveryJournal;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export class InstantRecovery {
  private constructor(
    readonly workDir: string,
    private journal: RecoveryJournal,
    private readonly vsphere: VSpherePort,
    private readonly exports: ExportHost,
  ) {}

  get state(): RecoveryJournal {
    return structuredClone(this.journal);
  }

  /** Exports, mounts, registers, snapshots and (by default) powers on. Undoes what it did when a step fails. */
  static async start(o: StartOptions): Promise<InstantRecovery> {
    if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(o.id)) throw new TypeError('an instant recovery id is 1-40 characters of [a-z0-9-]');
    await mkdir(o.workDir, { recursive: true });
    if (await readJournal(o.workDir)) throw new Error(`${o.workDir} already holds an instant recovery (${JOURNAL_FILE}); discard or sweep it first`);
    const now = new Date().toISOString();
    const journal: RecoveryJournal = {
      id: o.id,
      state: 'starting',
      name: o.target.name,
      host: o.target.host,
      exportName: `/vaultline/${o.id}`,
      datastoreName: `vaultline-${o.id}`.slice(0, 42),
      overlayDir: path.join(o.workDir, 'overlay'),
      restorePoint: o.restorePoint,
      createdAt: now,
      updatedAt: now,
    };
    await writeJournal(o.workDir, journal);
    const r = new InstantRecovery(o.workDir, journal, o.vsphere, o.exports);
    try {
      const tree = recoveryTree(o.hardware, o.disks, { name: o.target.name, recoveryId: o.id, connectNics: o.target.connectNics, networkMap: o.target.networkMap });
      for (const f of tree.overlayFiles) {
        await mkdir(path.join(journal.overlayDir, path.dirname(f.path)), { recursive: true });
        await writeFile(path.join(journal.overlayDir, f.path), f.content, { mode: 0o644 });
      }
      journal.vmx = tree.vmx;
      await writeJournal(o.workDir, journal);
      await o.exports.add({ name: journal.exportName, writableDir: journal.overlayDir, baseFiles: tree.baseFiles, allowedClients: o.allowedClients });
      journal.datastore = await o.vsphere.datastores.mountNfs(o.target.host, { remoteHost: o.exports.remoteHost, remotePath: journal.exportName, name: journal.datastoreName });
      await writeJournal(o.workDir, journal);
      journal.vm = await o.vsphere.vms.register(
        { vmxPath: `[${journal.datastoreName}] ${tree.vmx}`, folder: o.target.folder, resourcePool: o.target.resourcePool, host: o.target.host, name: o.target.name },
        o.task,
      );
      await writeJournal(o.workDir, journal);
      journal.snapshot = await o.vsphere.snapshots.create(journal.vm, {
        ...o.task,
        runId: o.id,
        name: SNAPSHOT_NAME,
        description: 'Writes of the instantly recovered VM; the restore point below it is read-only. Removed when the VM is migrated.',
      });
      await writeJournal(o.workDir, journal);
      if (o.target.powerOn !== false) await o.vsphere.vms.powerOn(journal.vm, o.task);
      journal.state = 'running';
      await writeJournal(o.workDir, journal);
      return r;
    } catch (e) {
      await r.teardown().catch(() => undefined);
      throw e;
    }
  }

  /** The journal of a recovery that was running before a restart, to serve again (see sweepInstantRecoveries). */
  static resume(workDir: string, journal: RecoveryJournal, vsphere: VSpherePort, exports: ExportHost): InstantRecovery {
    return new InstantRecovery(workDir, journal, vsphere, exports);
  }

  /**
   * Moves the running VM to `datastore` (Storage vMotion, deltas included), merges the recovery's snapshot into its
   * disks there, then unmounts the NFS datastore and removes the export and the overlay. The VM keeps running.
   */
  async migrate(datastore: string, opts: WaitTaskOptions = {}): Promise<void> {
    const j = this.journal;
    if (j.state !== 'running' && j.state !== 'migrating') throw new Error(`cannot migrate an instant recovery that is ${j.state}`);
    if (!j.vm) throw new Error('the instant recovery has no VM to migrate');
    await this.checkMarker(j.vm);
    j.state = 'migrating';
    j.migratedTo = datastore;
    await writeJournal(this.workDir, j);
    await this.vsphere.vms.relocate(j.vm, { datastore }, opts);
    if (j.snapshot) {
      await this.vsphere.snapshots.remove(j.snapshot, opts);
      j.snapshot = undefined;
      await writeJournal(this.workDir, j);
    }
    await this.unmountAndUnexport();
    j.state = 'migrated';
    await writeJournal(this.workDir, j);
  }

  /** Powers the VM off and unregisters it, unmounts the datastore, removes the export and the overlay. */
  async discard(): Promise<void> {
    if (this.journal.state === 'migrated' || this.journal.state === 'discarded') throw new Error(`the instant recovery is already ${this.journal.state}`);
    if (this.journal.state === 'migrating') throw new Error('the VM is being migrated to production storage: wait for the migration, then remove the VM in vSphere if it is not wanted');
    this.journal.state = 'discarding';
    await writeJournal(this.workDir, this.journal);
    await this.teardown();
  }

  /** Undoes what exists, in reverse order, each step recorded; safe to repeat. */
  private async teardown(): Promise<void> {
    const j = this.journal;
    if (j.vm) {
      if ((await this.markerOf(j.vm)) === j.id) {
        await this.vsphere.vms.powerOff(j.vm).catch(() => undefined); // already off is fine
        await this.vsphere.vms.unregister(j.vm);
      }
      j.vm = undefined;
      j.snapshot = undefined;
      await writeJournal(this.workDir, j);
    }
    await this.unmountAndUnexport();
    j.state = 'discarded';
    await writeJournal(this.workDir, j);
  }

  private async unmountAndUnexport(): Promise<void> {
    const j = this.journal;
    if (j.datastore) {
      await this.vsphere.datastores.unmount(j.host, j.datastore);
      j.datastore = undefined;
      await writeJournal(this.workDir, j);
    }
    await this.exports.remove(j.exportName).catch(() => undefined); // not served (any more) is fine
    await rm(j.overlayDir, { recursive: true, force: true });
  }

  /** The VM's marker, or undefined when the VM is gone (or not readable). */
  private async markerOf(vm: string): Promise<string | undefined> {
    try {
      return await this.vsphere.vms.instantRecoveryIdOf(vm);
    } catch {
      return undefined;
    }
  }

  private async checkMarker(vm: string): Promise<void> {
    const m = await this.markerOf(vm);
    if (m !== this.journal.id) throw new Error(`VM ${this.journal.name} is not (or no longer) the VM of instant recovery ${this.journal.id}; nothing was changed`);
  }
}

export interface SweepResult {
  /** Recoveries undone or finished (never running, or being discarded). */
  cleaned: string[];
  /** Running or migrating recoveries: their VM runs from the export, which the caller must serve again. */
  toResume: { workDir: string; journal: RecoveryJournal }[];
}

/** Looks at each recovery folder under `root` and finishes what a killed process left (see the file comment). */
export async function sweepInstantRecoveries(root: string, vsphere: VSpherePort, exports: ExportHost): Promise<SweepResult> {
  const out: SweepResult = { cleaned: [], toResume: [] };
  const names = await readdir(root).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
  for (const name of names) {
    const workDir = path.join(root, name);
    const journal = await readJournal(workDir);
    if (!journal) continue;
    if (journal.state === 'running' || journal.state === 'migrating') {
      out.toResume.push({ workDir, journal });
    } else if (journal.state === 'starting' || journal.state === 'discarding') {
      await InstantRecovery.resume(workDir, journal, vsphere, exports).discard();
      out.cleaned.push(journal.id);
    }
  }
  return out;
}
