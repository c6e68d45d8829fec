import { useQuery } from '@tanstack/react-query';
import type { ProtectionOverview } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

/** Which VMs are protected, computed by the Director in one call; refreshed as runs finish. */
export const useProtection = () =>
  useQuery({ queryKey: ['runs', 'protection'], queryFn: () => api<ProtectionOverview>('/api/overview/protection'), refetchInterval: 30_000 });
