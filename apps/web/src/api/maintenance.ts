import { useQuery } from '@tanstack/react-query';
import type { MaintenanceSettings, MaintenanceState, RunStarted } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const useMaintenance = (repositoryId: string) =>
  useQuery({ queryKey: ['repositories', repositoryId, 'maintenance'], queryFn: () => api<MaintenanceState>(`/api/repositories/${repositoryId}/maintenance`) });
export const saveMaintenance = (repositoryId: string, body: MaintenanceSettings) => api<MaintenanceSettings>(`/api/repositories/${repositoryId}/maintenance`, { method: 'PUT', body });
export const verifyNow = (repositoryId: string, sample: number) => api<RunStarted>(`/api/repositories/${repositoryId}/verify`, { method: 'POST', body: { sample } });
export const collectGarbageNow = (repositoryId: string) => api<RunStarted>(`/api/repositories/${repositoryId}/gc`, { method: 'POST', body: {} });
