import { useQuery } from '@tanstack/react-query';
import type { NotificationCreate, NotificationDelivery, NotificationTargetDto, Ok } from '@vaultline/contracts';
import { api } from '../lib/api.ts';


export const useNotificationTargets = (enabled = true) => useQuery({ queryKey: ['notifications'], queryFn: () => api<NotificationTargetDto[]>('/api/notifications'), enabled });
export const useDeliveries = (id: string, enabled: boolean) =>
  useQuery({ queryKey: ['notifications', id, 'deliveries'], queryFn: () => api<NotificationDelivery[]>(`/api/notifications/${id}/deliveries`), enabled, refetchInterval: enabled ? 15_000 : false });
export const createTarget = (body: NotificationCreate) => api<NotificationTargetDto>('/api/notifications', { method: 'POST', body });
export const updateTarget = (id: string, body: Partial<Pick<NotificationTargetDto, 'events' | 'enabled'>>) => api<NotificationTargetDto>(`/api/notifications/${id}`, { method: 'PATCH', body });
export const deleteTarget = (id: string) => api<Ok>(`/api/notifications/${id}`, { method: 'DELETE' });
export const sendTest = (id: string) => api<Ok>(`/api/notifications/${id}/test`, { method: 'POST', body: {} });
