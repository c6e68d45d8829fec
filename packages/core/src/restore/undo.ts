/**
 * Undoing a restore that did not finish: what the `restore_vm` journal row
 * records, and the one routine that undoes it — used by a failing restore
 * itself and by the orphan sweep after a crash.
 *
 * - The restored VM is destroyed only when it carries this restore's marker
 *   (the port refuses any other VM), so an existing VM can never be.
 * - A replace that was interrupted mid-swap is rolled back: the original gets
 *   its name back and is powered on again if it was running. When the swap had
 *   completed (the restored VM already carries the final name), nothing is
 *   undone: the restored VM is the one in service now.
 */
import type { RestorePort } from './ports.ts';

export type SwapStep = 'powering off' | 'renaming original' | 'renaming restored';

export interface RestoreJournalTarget {
  restoreId: string;
  /** Name the VM was created under (a temporary one when replacing). */
  name: string;
  vm: string | null;
  swap?: {
    /** The VM being replaced, and what it was called. */
    original: string;
    originalName: string;
    /** Its name once replaced: <name>-replaced-<UTC yyyymmdd-hhmm>. */
    renamedTo: string;
    wasPoweredOn: boolean;
    step: SwapStep;
  };
}

export function parseRestoreTarget(t: Record<string, unknown>): RestoreJournalTarget {
  const swap = t.swap as RestoreJournalTarget['swap'] | undefined;
  return { restoreId: String(t.restoreId), name: String(t.name), vm: typeof t.vm === 'string' ? t.vm : null, ...(swap ? { swap } : {}) };
}

export interface UndoReport {
  /** The restored VM was destroyed. */
  removed: boolean;
  /** The swap had completed: the restored VM was kept. */
  completed: boolean;
  /** What was done, for the run log and the sweep's log. */
  done: string[];
}

const isGone = (err: unknown) => /ManagedObjectNotFound|not found|does not exist/i.test(`${(err as Error)?.name} ${(err as Error)?.message}`);

export async function undoRestore(vsphere: RestorePort, t: RestoreJournalTarget): Promise<UndoReport> {
  const report: UndoReport = { removed: false, completed: false, done: [] };
  const swap = t.swap;
  if (swap && t.vm && swap.step === 'renaming restored') {
    const current = await vsphere.vm(t.vm).catch((err: unknown) => (isGone(err) ? null : Promise.reject(err)));
    if (current && current.name === swap.originalName) {
      report.completed = true;
      report.done.push(`the swap had completed: ${swap.originalName} is the restored VM, the original is kept as ${swap.renamedTo}`);
      return report;
    }
  }
  // The VM this restore created (found by name when the crash came before its moref was recorded).
  const moref = t.vm ?? (await vsphere.vms()).find((v) => v.name === t.name)?.moref;
  if (moref) {
    const marker = await vsphere.restoreIdOf(moref).catch((err: unknown) => (isGone(err) ? undefined : Promise.reject(err)));
    if (marker === t.restoreId) {
      await vsphere.destroyRestored(moref, t.restoreId);
      report.removed = true;
      report.done.push(`removed the half-restored VM ${t.name}`);
    }
  }
  if (swap) {
    const original = await vsphere.vm(swap.original).catch((err: unknown) => (isGone(err) ? null : Promise.reject(err)));
    if (!original) {
      report.done.push(`the original VM ${swap.originalName} (${swap.original}) no longer exists`);
    } else {
      if (original.name === swap.renamedTo) {
        await vsphere.rename(swap.original, swap.originalName);
        report.done.push(`renamed the original VM back from ${swap.renamedTo} to ${swap.originalName}`);
      }
      if (swap.wasPoweredOn && original.powerState !== 'poweredOn') {
        await vsphere.powerOn(swap.original);
        report.done.push(`powered the original VM ${swap.originalName} on again`);
      }
    }
  }
  return report;
}
