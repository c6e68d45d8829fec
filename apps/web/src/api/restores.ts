import { useQuery } from '@tanstack/react-query';
import type { PlacementTargets, RepositoryRestorePoint, RestorePointDetail, RestoreRequest, RunStarted } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

/** Every restore point of one VM (instance UUID or name), newest first, across repositories. */
export const useVmRestorePoints = (vm: string | undefined) =>
  useQuery({ queryKey: ['restore-points', 'vm', vm], queryFn: () => api<RepositoryRestorePoint[]>(`/api/restore-points?vm=${encodeURIComponent(vm!)}&limit=1000`), enabled: Boolean(vm) });

/** Every restore point (newest first), e.g. to know which VMs have one. */
export const useAllRestorePoints = (enabled = true) =>
  useQuery({ queryKey: ['restore-points', 'all'], queryFn: () => api<RepositoryRestorePoint[]>('/api/restore-points?limit=1000'), enabled, refetchInterval: 30_000 });

/** One restore point with its origin vCenter, recorded hardware, disks and NIC networks (reads the repository). */
export const useRestorePoint = (id: string | undefined) =>
  useQuery({ queryKey: ['restore-points', 'one', id], queryFn: () => api<RestorePointDetail>(`/api/restore-points/${id!}`), enabled: Boolean(id), retry: false, staleTime: 60_000 });

/** Hosts, folders, pools, datastores and networks of a vCenter (operator role). */
export const usePlacement = (vcenterId: string | undefined) =>
  useQuery({ queryKey: ['placement', vcenterId], queryFn: () => api<PlacementTargets>(`/api/vcenters/${vcenterId!}/placement`), enabled: Boolean(vcenterId), retry: false, staleTime: 30_000 });

/** The body as the Director takes it; defaults (powerOn, transport, …) are filled in there. */
export type RestoreBody = Partial<Pick<RestoreRequest, 'powerOn' | 'transport' | 'failoverToNetwork' | 'drill'>> & Omit<RestoreRequest, 'powerOn' | 'transport' | 'failoverToNetwork' | 'drill'>;
export const startRestore = (body: RestoreBody) => api<RunStarted>('/api/restores', { method: 'POST', body });

export const diskDownloadUrl = (pointId: string, key: string, format: 'raw' | 'vmdk') => `/api/restore-points/${pointId}/disks/${encodeURIComponent(key)}/download?format=${format}`;
export const ovaUrl = (pointId: string, layout: 'chunked' | 'whole') => `/api/restore-points/${pointId}/ova?layout=${layout}`;

/** Releases the retention hold a ransomware-suspect point put on its VM (operator role; the note is audited). */
export const releaseHold = (pointId: string, note: string) => api<RepositoryRestorePoint>(`/api/restore-points/${encodeURIComponent(pointId)}/release-hold`, { method: 'POST', body: { note } });
