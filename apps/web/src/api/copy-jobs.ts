import { useQuery } from '@tanstack/react-query';
import type { CopyJob, CopyJobInput, Ok, RunStarted } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const useCopyJobs = () => useQuery({ queryKey: ['copy-jobs'], queryFn: () => api<CopyJob[]>('/api/copy-jobs'), refetchInterval: 15_000 });
export const createCopyJob = (body: Partial<CopyJobInput> & Pick<CopyJobInput, 'name' | 'sourceRepositoryId' | 'targetRepositoryId'>) => api<CopyJob>('/api/copy-jobs', { method: 'POST', body });
export const deleteCopyJob = (id: string) => api<Ok>(`/api/copy-jobs/${id}`, { method: 'DELETE' });
export const runCopyJob = (id: string) => api<RunStarted>(`/api/copy-jobs/${id}/run`, { method: 'POST' });
