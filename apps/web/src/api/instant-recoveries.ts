import { useQuery } from '@tanstack/react-query';
import { INSTANT_RECOVERY_FINAL_STATES, type InstantRecovery, type InstantRecoveryCreate } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

/** Whether a recovery still changes on its own (its Transporter is working on it), so the list polls fast. */
export const settling = (r: InstantRecovery) => r.state !== 'running' && !INSTANT_RECOVERY_FINAL_STATES.includes(r.state);

/** Every instant recovery, newest first; every 2 s while one is on its way, else every 15 s. */
export const useInstantRecoveries = () =>
  useQuery({
    queryKey: ['instant-recoveries'],
    queryFn: () => api<InstantRecovery[]>('/api/instant-recoveries'),
    refetchInterval: (q) => (q.state.data?.some(settling) ? 2_000 : 15_000),
  });

export type InstantRecoveryBody = Partial<Pick<InstantRecoveryCreate, 'powerOn' | 'connectNics' | 'folder' | 'resourcePool'>> & Pick<InstantRecoveryCreate, 'restorePointId' | 'vcenterId' | 'host' | 'name'>;
export const startInstantRecovery = (body: InstantRecoveryBody) => api<InstantRecovery>('/api/instant-recoveries', { method: 'POST', body });
export const migrateInstantRecovery = (id: string, datastore: string) => api<InstantRecovery>(`/api/instant-recoveries/${id}/migrate`, { method: 'POST', body: { datastore } });
export const discardInstantRecovery = (id: string) => api<InstantRecovery>(`/api/instant-recoveries/${id}/discard`, { method: 'POST' });
