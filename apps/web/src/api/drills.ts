import { useQuery } from '@tanstack/react-query';
import type { DrillCreate, DrillJobDto, DrillRunsStarted, DrillUpdate, Ok } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const useDrills = () => useQuery({ queryKey: ['drills'], queryFn: () => api<DrillJobDto[]>('/api/drills'), refetchInterval: 15_000 });
export const useDrill = (id: string | undefined) => useQuery({ queryKey: ['drills', id], queryFn: () => api<DrillJobDto>(`/api/drills/${id!}`), enabled: Boolean(id) });
export const createDrill = (body: Partial<DrillCreate> & Pick<DrillCreate, 'name' | 'vcenterId' | 'vms'>) => api<DrillJobDto>('/api/drills', { method: 'POST', body });
export const updateDrill = (id: string, body: DrillUpdate) => api<DrillJobDto>(`/api/drills/${id}`, { method: 'PATCH', body });
export const deleteDrill = (id: string) => api<Ok>(`/api/drills/${id}`, { method: 'DELETE' });
export const runDrill = (id: string) => api<DrillRunsStarted>(`/api/drills/${id}/run`, { method: 'POST' });
