import { useQueries, useQuery } from '@tanstack/react-query';
import type { RepositoryCapacity, RepositoryCreate, RepositoryDto, RepositoryRestorePoint, RepositoryStats } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

export const getRepositories = () => api<RepositoryDto[]>('/api/repositories');
export const useRepositories = () => useQuery({ queryKey: ['repositories'], queryFn: getRepositories });

const statsQuery = (id: string) => ({ queryKey: ['repositories', id, 'stats'], queryFn: () => api<RepositoryStats>(`/api/repositories/${id}/stats`), staleTime: 30_000, retry: false });
export const useRepositoryStats = (id: string) => useQuery(statsQuery(id));
/** Stats of several repositories at once, in the same order. */
export const useRepositoriesStats = (ids: string[]) => useQueries({ queries: ids.map(statsQuery) });

/** The repository's size samples of the last `days` and its newest figures (stored server-side by the Transporter). */
export const getRepositoryCapacity = (id: string, days: number) => api<RepositoryCapacity>(`/api/repositories/${id}/capacity?days=${days}`);
export const useRepositoryCapacity = (id: string, days: number) =>
  useQuery({ queryKey: ['repositories', id, 'capacity', days], queryFn: () => getRepositoryCapacity(id, days), staleTime: 30_000, placeholderData: (previous) => (previous?.repositoryId === id ? previous : undefined) });

export const useRestorePoints = (id: string) =>
  useQuery({ queryKey: ['repositories', id, 'points'], queryFn: () => api<RepositoryRestorePoint[]>(`/api/repositories/${id}/restore-points?limit=1000`) });

export const createRepository = (body: RepositoryCreate) => api<RepositoryDto>('/api/repositories', { method: 'POST', body });
