import { useQuery } from '@tanstack/react-query';
import type {
  RemoteAddResult,
  RemoteDeployResult,
  RemoteRemoveResult,
  RemoteRestartResult,
  RemoteTransporter,
  RemoteTransporterCreate,
  RemoteTransporterStatus,
  TransporterEndpoints,
  TransporterEndpointsView,
} from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const useRemoteTransporters = (enabled: boolean) => useQuery({ queryKey: ['remote-transporters'], queryFn: () => api<RemoteTransporter[]>('/api/transporters/remote'), enabled });
/** Asks the host over SSH: slow-ish, so only on request and not retried. */
export const useRemoteStatus = (id: string, enabled: boolean) =>
  useQuery({ queryKey: ['remote-transporters', id, 'status'], queryFn: () => api<RemoteTransporterStatus>(`/api/transporters/remote/${id}`, { timeoutSeconds: 60 }), enabled, retry: false, staleTime: 10_000 });

/** The first call (without hostKeySha256) answers 409 with the host key to confirm. */
export const addRemote = (body: Partial<RemoteTransporterCreate> & Pick<RemoteTransporterCreate, 'name' | 'host' | 'username'>) =>
  api<RemoteAddResult>('/api/transporters/remote', { method: 'POST', body });
export const deployRemote = (id: string) => api<RemoteDeployResult>(`/api/transporters/remote/${id}/deploy`, { method: 'POST', body: {} });
export const upgradeRemote = (id: string) => api<RemoteDeployResult>(`/api/transporters/remote/${id}/upgrade`, { method: 'POST', body: {} });
export const restartRemote = (id: string) => api<RemoteRestartResult>(`/api/transporters/remote/${id}/restart`, { method: 'POST', body: {} });
export const removeRemote = (id: string, force: boolean, currentPassword: string) =>
  api<RemoteRemoveResult>(`/api/transporters/remote/${id}${force ? '?force=true' : ''}`, { method: 'DELETE', body: { currentPassword } });
export const repinHostKey = (id: string, hostKeySha256?: string) => api<RemoteTransporter>(`/api/transporters/remote/${id}/host-key`, { method: 'POST', body: hostKeySha256 ? { hostKeySha256 } : {} });

export const useEndpoints = (enabled: boolean) => useQuery({ queryKey: ['transporter-endpoints'], queryFn: () => api<TransporterEndpointsView>('/api/settings/transporter-endpoints'), enabled, retry: false });
export const saveEndpoints = (body: TransporterEndpoints) => api<TransporterEndpoints>('/api/settings/transporter-endpoints', { method: 'PUT', body });
