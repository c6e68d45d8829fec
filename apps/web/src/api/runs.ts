import { useQuery } from '@tanstack/react-query';
import type { Ok, Run, RunDetail, RunStarted, RunStatus } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export interface RunFilter {
  jobId?: string | undefined;
  status?: RunStatus | undefined;
  limit?: number;
  /** false: items without their logs (lists that do not show them). */
  logs?: boolean;
}

export function getRuns(f: RunFilter = {}): Promise<Run[]> {
  const q = new URLSearchParams();
  if (f.jobId) q.set('jobId', f.jobId);
  if (f.status) q.set('status', f.status);
  q.set('limit', String(f.limit ?? 50));
  if (f.logs === false) q.set('logs', 'false');
  return api<Run[]>(`/api/runs?${q}`);
}
export const runsQueryOptions = (f: RunFilter = {}) => ({ queryKey: ['runs', f], queryFn: () => getRuns(f), refetchInterval: 15_000 });
export const useRuns = (f: RunFilter = {}) => useQuery(runsQueryOptions(f));

/** One run with its disks' throughput samples. */
export const getRun = (id: string) => api<RunDetail>(`/api/runs/${id}`);
export const useRun = (id: string) => useQuery({ queryKey: ['runs', 'one', id], queryFn: () => getRun(id), refetchInterval: 10_000 });

export const cancelRun = (id: string) => api<Ok>(`/api/runs/${id}/cancel`, { method: 'POST' });
/** A run of the failed VMs of a finished backup run (its job's, or the same one-off). */
export const retryRun = (id: string) => api<RunStarted>(`/api/runs/${id}/retry`, { method: 'POST' });

export const isActive = (status: RunStatus) => status === 'queued' || status === 'running';
