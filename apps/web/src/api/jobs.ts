import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { Job, JobCreateInput, JobHistory, JobsHistory, JobUpdate, Ok, Run, SchedulePreview } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const getJobs = () => api<Job[]>('/api/jobs');
export const jobsQueryOptions = () => ({ queryKey: ['jobs'], queryFn: getJobs, refetchInterval: 30_000 });
export const useJobs = () => useQuery(jobsQueryOptions());

export const getJob = (id: string) => api<Job>(`/api/jobs/${id}`);
export const useJob = (id: string | undefined) => useQuery({ queryKey: ['jobs', id], queryFn: () => getJob(id!), enabled: Boolean(id) });

/** Every job's latest runs (status and duration), for the Jobs list's bars: one request for the whole list. */
export const getJobsHistory = (limit = 12) => api<JobsHistory>(`/api/jobs/history?limit=${limit}`);
export const useJobsHistory = () => useQuery({ queryKey: ['jobs', 'history'], queryFn: () => getJobsHistory(), refetchInterval: 30_000 });

/** A job's latest runs, oldest first, with durations and bytes: the job page's chart. */
export const getJobHistory = (id: string, limit = 30) => api<JobHistory>(`/api/jobs/${id}/history?limit=${limit}`);
export const useJobHistory = (id: string | undefined) =>
  useQuery({ queryKey: ['jobs', id, 'history'], queryFn: () => getJobHistory(id!), enabled: Boolean(id), refetchInterval: 30_000 });

export const createJob = (body: JobCreateInput) => api<Job>('/api/jobs', { method: 'POST', body });
export const updateJob = (id: string, body: JobUpdate) => api<Job>(`/api/jobs/${id}`, { method: 'PATCH', body });
export const deleteJob = (id: string) => api<Ok>(`/api/jobs/${id}`, { method: 'DELETE' });
export const runJob = (id: string) => api<Run>(`/api/jobs/${id}/run`, { method: 'POST' });

/** Mutations that refresh the job list (and runs) when they succeed. */
export function useJobMutations() {
  const qc = useQueryClient();
  const refresh = async () => {
    await Promise.all([qc.invalidateQueries({ queryKey: ['jobs'] }), qc.invalidateQueries({ queryKey: ['runs'] })]);
  };
  return {
    update: useMutation({ mutationFn: ({ id, body }: { id: string; body: JobUpdate }) => updateJob(id, body), onSuccess: refresh }),
    remove: useMutation({ mutationFn: deleteJob, onSuccess: refresh }),
    run: useMutation({ mutationFn: runJob, onSuccess: refresh }),
  };
}

export const previewSchedule = (schedule: string) => api<SchedulePreview>('/api/schedules/preview', { method: 'POST', body: { schedule } });
/** The server's verdict on a cron expression: the next runs, or its error. */
export const useSchedulePreview = (schedule: string | null) =>
  useQuery({ queryKey: ['schedule-preview', schedule], queryFn: () => previewSchedule(schedule!), enabled: Boolean(schedule), retry: false, staleTime: 60_000 });
