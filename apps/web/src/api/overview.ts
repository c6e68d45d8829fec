import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { ProtectionOverview } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

const PROTECTION_KEY = ['runs', 'protection'];

/** Which VMs are protected, computed by the Director in one call; refreshed as runs finish. */
export const useProtection = () => useQuery({ queryKey: PROTECTION_KEY, queryFn: () => api<ProtectionOverview>('/api/overview/protection'), refetchInterval: 30_000 });

/** Reads the protection with every vCenter's inventory read now (not the Director's minute-old copy). */
export function useRefreshInventory() {
  const client = useQueryClient();
  return async () => {
    const data = await api<ProtectionOverview>('/api/overview/protection?fresh=true');
    client.setQueryData(PROTECTION_KEY, data);
  };
}
