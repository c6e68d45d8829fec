/**
 * Live run updates over socket.io: disk progress is kept in memory (several a
 * second per disk); a disk's first progress, phase changes, logs and finished
 * VMs/runs refetch the runs from the Director (the truth), at most about three
 * times a second.
 */
import { useRef, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { DiskProgress } from '@vaultline/contracts';
import { useSocketEvents } from '../lib/socket.ts';

export type LiveProgress = Record<string, DiskProgress>;
export const liveKey = (runVmId: string, deviceKey: number) => `${runVmId}:${deviceKey}`;

const REFRESH_EVENTS = ['vm.phase', 'vm.finished', 'run.finished', 'run.log'] as const;

export function useLiveRuns(): LiveProgress {
  const qc = useQueryClient();
  const [live, setLive] = useState<LiveProgress>({});
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  const jobsToo = useRef(false);
  const seen = useRef(new Set<string>());
  useSocketEvents(['disk.progress', ...REFRESH_EVENTS], (event, payload) => {
    if (event === 'disk.progress') {
      const p = payload as DiskProgress;
      const key = liveKey(p.runVmId, p.deviceKey);
      setLive((l) => ({ ...l, [key]: p }));
      // A disk seen for the first time has just started: fetch its row (transport, reasons).
      if (seen.current.has(key)) return;
      seen.current.add(key);
    }
    if (event === 'run.finished') jobsToo.current = true;
    pending.current ??= setTimeout(() => {
      pending.current = null;
      void qc.invalidateQueries({ queryKey: ['runs'] });
      // A finished run changes what lists show: a job's or drill's last result, new or verified restore points, restored VMs.
      if (jobsToo.current) for (const key of ['jobs', 'drills', 'restore-points', 'repositories', 'vms']) void qc.invalidateQueries({ queryKey: [key] });
      jobsToo.current = false;
    }, 300);
  });
  return live;
}
