/**
 * The orphan sweep: replays the cleanup journal of this Transporter (newest
 * row first: the reverse of the order things were done), then looks
 * for leftovers no journal row names (a crash between vCenter acting and the
 * row being updated): snapshots carrying our tag on VMs with no backup running
 * here, and disks on this Transporter's own VM that belong to another VM.
 * Removal escalates as Veeam's Snapshot Hunter does: remove → consolidate.
 * Run at start (before taking work) and periodically while idle.
 * The journal hands out only rows whose MAC verifies; a row the undo still
 * will not act on (JournalTrustError: a mount point outside the mount dir, a
 * device that is not the LUN's) is refused, never retried.
 */
import { JournalTrustError } from '@vaultline/appliance';
import type { Logger } from '@vaultline/logger';
import type { CleanupJournal, LocalDevices, VSpherePort } from '@vaultline/core';

export interface SweepDeps {
  journal: CleanupJournal;
  /** vSphere sessions per vCenter id (the journal rows name theirs). */
  vsphere(vcenterId: string): Promise<VSpherePort>;
  vcenterIds(): Promise<string[]>;
  devices: LocalDevices;
  proxyVm(vcenterId: string): Promise<{ moref: string; folder: string } | null>;
  /** Run items currently being worked on by this process (never swept). */
  activeRunVmIds(): Set<string>;
  log: Logger;
}

export interface SweepReport {
  snapshotsRemoved: string[];
  disksDetached: string[];
  mountsUndone: number;
  restoredVmsRemoved: string[];
  failures: string[];
  /** Rows refused (not acted on) by this sweep, with why. */
  refused: string[];
}

const isGone = (err: unknown) => /ManagedObjectNotFound|not found|does not exist/i.test(`${(err as Error)?.name} ${(err as Error)?.message}`);

export async function sweepOrphans(deps: SweepDeps): Promise<SweepReport> {
  const report: SweepReport = { snapshotsRemoved: [], disksDetached: [], mountsUndone: 0, restoredVmsRemoved: [], failures: [], refused: [] };
  const active = deps.activeRunVmIds();
  // Undo in the reverse order of doing: a disk is detached before the snapshot it was read
  // from is removed, and before the restored VM it belongs to is destroyed.
  for (const rec of (await deps.journal.pending()).reverse()) {
    if (rec.runVmId && active.has(rec.runVmId)) continue;
    try {
      if (rec.kind === 'lun_mount') {
        if (rec.target.cleanup) await deps.devices.undoSan(rec.target.cleanup);
        report.mountsUndone += 1;
      } else if (rec.kind === 'snapshot' && rec.vcenterId) {
        const vs = await deps.vsphere(rec.vcenterId);
        const snap = rec.target.snapshot as string | null;
        const vmMoref = rec.target.vmMoref as string;
        const targets = snap ? [snap] : rec.runVmId ? (await vs.findTaggedSnapshots(rec.runVmId)).map((s) => s.snapshot) : [];
        for (const s of targets) {
          try {
            await vs.removeSnapshot(s);
            report.snapshotsRemoved.push(s);
          } catch (err) {
            if (isGone(err)) continue;
            if (rec.attempts >= 1) {
              deps.log.warn({ vmMoref, snapshot: s }, 'snapshot removal keeps failing; consolidating the VM');
              await vs.consolidate(vmMoref);
            }
            throw err;
          }
        }
      } else if (rec.kind === 'restore_vm' && rec.vcenterId) {
        const vs = await deps.vsphere(rec.vcenterId);
        const undo = await vs.undoRestore(rec.target);
        if (undo.removed) report.restoredVmsRemoved.push(rec.target.name as string);
        if (undo.done.length) deps.log.info({ restore: rec.target.restoreId, done: undo.done }, 'unfinished restore undone');
      } else if (rec.kind === 'disk_attach' && rec.vcenterId) {
        const vs = await deps.vsphere(rec.vcenterId);
        const proxy = rec.target.proxyVm as string;
        const fileName = rec.target.fileName as string;
        for (const d of await vs.vmDisks(proxy)) {
          if (d.fileName === fileName) {
            await vs.detachDisk(proxy, d.key, d.fileName);
            if (d.uuid) await deps.devices.waitGone(d.uuid).catch(() => undefined);
            report.disksDetached.push(fileName);
          }
        }
      }
      await deps.journal.resolve(rec.id);
    } catch (err) {
      const message = `${rec.kind} ${JSON.stringify(rec.target)}: ${(err as Error).message}`;
      if (err instanceof JournalTrustError) {
        report.refused.push(message);
        await deps.journal.refuse(rec.id, err.message).catch(() => undefined);
        continue;
      }
      report.failures.push(message);
      await deps.journal.failed(rec.id, (err as Error).message).catch(() => undefined);
    }
  }

  // Leftovers with no journal row.
  for (const vcenterId of await deps.vcenterIds()) {
    let vs: VSpherePort;
    try {
      vs = await deps.vsphere(vcenterId);
    } catch (err) {
      report.failures.push(`vCenter ${vcenterId}: ${(err as Error).message}`);
      continue;
    }
    try {
      for (const s of await vs.findTaggedSnapshots()) {
        if (active.has(s.runVmId)) continue;
        try {
          await vs.removeSnapshot(s.snapshot);
          report.snapshotsRemoved.push(s.snapshot);
        } catch (err) {
          if (!isGone(err)) report.failures.push(`snapshot ${s.snapshot} of ${s.vmName}: ${(err as Error).message}`);
        }
      }
      const proxy = await deps.proxyVm(vcenterId);
      if (proxy && active.size === 0) {
        for (const d of await vs.vmDisks(proxy.moref)) {
          if (d.fileName.startsWith(proxy.folder)) continue;
          await vs.detachDisk(proxy.moref, d.key, d.fileName);
          if (d.uuid) await deps.devices.waitGone(d.uuid).catch(() => undefined);
          report.disksDetached.push(d.fileName);
        }
      }
    } catch (err) {
      report.failures.push(`vCenter ${vcenterId}: ${(err as Error).message}`);
    }
  }
  return report;
}
