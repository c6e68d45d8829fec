import { useQueries, useQuery } from '@tanstack/react-query';
import type { InventoryTree, InventoryVm, Ok, VCenter, VCenterCreateInput } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const getVCenters = () => api<VCenter[]>('/api/vcenters');
export const useVCenters = () => useQuery({ queryKey: ['vcenters'], queryFn: getVCenters });

const vmsQuery = (id: string) => ({ queryKey: ['vms', id], queryFn: () => api<InventoryVm[]>(`/api/vcenters/${id}/vms`, { timeoutSeconds: 60 }), staleTime: 30_000, retry: false });
export const useInventory = (vcenterId: string | undefined) => useQuery({ ...vmsQuery(vcenterId ?? ''), enabled: Boolean(vcenterId) });
export const useInventories = (ids: string[]) => useQueries({ queries: ids.map(vmsQuery) });
/** The VMs with the datacenters, clusters, hosts and VM folders holding them (the job wizard's tree), read now. */
export const useInventoryTree = (vcenterId: string | undefined) =>
  useQuery({ queryKey: ['inventory-tree', vcenterId ?? ''], queryFn: () => api<InventoryTree>(`/api/vcenters/${vcenterId}/inventory`, { timeoutSeconds: 60 }), staleTime: 30_000, retry: false, enabled: Boolean(vcenterId) });

/** First call without thumbprintSha256 answers 409 with the thumbprint to confirm. */
export const addVCenter = (body: VCenterCreateInput) => api<VCenter>('/api/vcenters', { method: 'POST', body });
export const deleteVCenter = (id: string, currentPassword: string) => api<Ok>(`/api/vcenters/${id}`, { method: 'DELETE', body: { currentPassword } });
