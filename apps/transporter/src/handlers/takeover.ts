/**
 * A run item handed to a Transporter while PostgreSQL still says it is running (and not waiting for a
 * retry) was being worked on by a Transporter that stopped: the queue gives a job whose worker stopped
 * renewing its lock to the next worker, which may be the same Transporter started again. The item's log
 * says so, with what the interrupted attempt had moved, so progress that starts again from zero is
 * never a silent reset.
 */
import type { Db } from '@vaultline/db';

export interface Interrupted {
  transporterId: string | null;
  phase: string;
  /** When the Director saw that Transporter fall silent (its last heartbeat), if it did. */
  lostAt: Date | null;
  /** Per disk: what the interrupted attempt had moved (read for a backup, written for a restore). */
  moved: { label: string; bytes: number }[];
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
export const sizeText = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`);

/** What the interrupted attempt left, read before this attempt writes over the item's rows; null when nothing was interrupted. */
export async function interruptedAttempt(db: Db, item: { id: string; status: string; phase: string; transporterId: string | null; transporterLostAt: Date | null }, direction: 'read' | 'written'): Promise<Interrupted | null> {
  if (item.status !== 'running' || item.phase === 'retrying') return null;
  const disks = await db.runDisk.findMany({ where: { runVmId: item.id }, orderBy: { deviceKey: 'asc' }, select: { label: true, bytesRead: true, bytesWritten: true } });
  return {
    transporterId: item.transporterId,
    phase: item.phase,
    lostAt: item.transporterLostAt,
    moved: disks.map((d) => ({ label: d.label, bytes: Number(direction === 'read' ? d.bytesRead : d.bytesWritten) })).filter((d) => d.bytes > 0),
  };
}

export function takeoverMessage(i: Interrupted, me: { id: string; name: string }, work: 'backup' | 'restore'): string {
  const same = i.transporterId === me.id;
  const from = same ? 'an earlier process of this same Transporter' : `Transporter ${i.transporterId ?? '(unknown)'}`;
  const silent = i.lostAt ? `, silent since ${i.lostAt.toISOString()}` : '';
  const what = work === 'backup' ? 'snapshot, attached disks' : 'the half-restored VM, attached disks';
  const left = same
    ? `what it left in vSphere (${what}) was removed by the sweep this Transporter ran when it started`
    : `what it left in vSphere (${what}) is removed by its sweep when it starts again, or by another Transporter once it has been silent 10 minutes`;
  const verb = work === 'backup' ? 'read' : 'written';
  const moved = i.moved.length ? `; it had ${verb} ${i.moved.map((d) => `${sizeText(d.bytes)} of ${d.label}`).join(', ')}` : '';
  const again = work === 'backup' ? 'this attempt takes a new snapshot and reads the disks again from the start (nothing of the interrupted attempt was committed)' : 'this attempt restores again from the start';
  return `taken over by Transporter ${me.name} from ${from}, which stopped at ${i.phase}${silent}: ${left}${moved}; ${again}`;
}
