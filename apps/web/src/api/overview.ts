import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import type { ProtectionFilter, ProtectionOverview } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

const PROTECTION_KEY = ['runs', 'protection'];

/** The page of the protection table asked for: paged and filtered by the Director, not in the browser. */
export interface ProtectionPage {
  offset: number;
  limit: number;
  status?: ProtectionFilter;
  /** Part of a VM's name. */
  q?: string;
}

const protectionUrl = (p: ProtectionPage, fresh = false) => {
  const qs = new URLSearchParams({ offset: String(p.offset), limit: String(p.limit) });
  if (p.status) qs.set('status', p.status);
  if (p.q) qs.set('q', p.q);
  if (fresh) qs.set('fresh', 'true');
  return `/api/overview/protection?${qs.toString()}`;
};
const keyOf = (p: ProtectionPage) => [...PROTECTION_KEY, { offset: p.offset, limit: p.limit, status: p.status ?? null, q: p.q ?? '' }];

/**
 * Which VMs are protected, computed by the Director in one call; refreshed as runs finish and every 30 s. While
 * another page loads, the one shown stays (no flash of "Reading…").
 */
export const useProtection = (page: ProtectionPage) =>
  useQuery({ queryKey: keyOf(page), queryFn: () => api<ProtectionOverview>(protectionUrl(page)), refetchInterval: 30_000, placeholderData: keepPreviousData });

/** Reads the page shown with every vCenter's inventory read now (not the Director's minute-old copy). */
export function useRefreshInventory() {
  const client = useQueryClient();
  return async (page: ProtectionPage) => {
    const data = await api<ProtectionOverview>(protectionUrl(page, true));
    client.setQueryData(keyOf(page), data);
    // Other pages and filters were computed from the older copy.
    await client.invalidateQueries({ queryKey: PROTECTION_KEY, predicate: (q) => JSON.stringify(q.queryKey) !== JSON.stringify(keyOf(page)) });
  };
}
