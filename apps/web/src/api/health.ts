import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { HealthResponse, TransporterLoad } from '@vaultline/contracts';
import { api } from '../lib/api.ts';
import { useSocketEvents } from '../lib/socket.ts';

/** Health, pushed over the socket every couple of seconds and polled as a fallback. */
export function useHealth() {
  const qc = useQueryClient();
  useSocketEvents(['health'], (_e, h) => qc.setQueryData(['health'], h));
  return useQuery({ queryKey: ['health'], queryFn: () => api<HealthResponse>('/api/health'), refetchInterval: 10_000 });
}

export const useTransporters = () => useQuery({ queryKey: ['transporters'], queryFn: () => api<TransporterLoad[]>('/api/transporters'), refetchInterval: 3_000 });
