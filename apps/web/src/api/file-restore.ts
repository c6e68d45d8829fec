import { useInfiniteQuery } from '@tanstack/react-query';
import type { BrowseListingDto, BrowseSessionDto } from '@vaultline/contracts';
import { api } from '../lib/api.ts';

/**
 * File-level restore: a browse session mounts a restore point's partitions read-only on the Director
 * (operator role); listing, downloads and archives go through it until it is closed or times out.
 */
const base = (pointId: string, session: string) => `/api/restore-points/${encodeURIComponent(pointId)}/browse/${encodeURIComponent(session)}`;

export const openBrowseSession = (pointId: string) => api<BrowseSessionDto>(`/api/restore-points/${encodeURIComponent(pointId)}/browse`, { method: 'POST' });

/** The session as the Director has it (this counts as use: it resets the idle timer). */
export const getBrowseSession = (pointId: string, session: string) => api<BrowseSessionDto>(base(pointId, session));

export const closeBrowseSession = (pointId: string, session: string) => api<null>(base(pointId, session), { method: 'DELETE' });

/** For leaving the page: a request the browser finishes even while the page goes away; errors are ignored. */
export function closeBrowseSessionOnLeave(pointId: string, session: string): void {
  void fetch(base(pointId, session), { method: 'DELETE', credentials: 'same-origin', keepalive: true }).catch(() => undefined);
}

/** Where an item is: the partition id and the base64url `ref` of its raw path ('' is the root). */
export interface BrowseLocation {
  partition: string;
  ref: string;
}

const itemQuery = (at: BrowseLocation, extra: Record<string, string> = {}) => new URLSearchParams({ partition: at.partition, ...(at.ref ? { ref: at.ref } : {}), ...extra }).toString();

/** A regular file, downloaded by the browser itself (the Director names it with Content-Disposition). */
export const browseFileUrl = (pointId: string, session: string, at: BrowseLocation) => `${base(pointId, session)}/file?${itemQuery(at)}`;

/** A directory as a tar stream (symbolic links kept as links; FIFOs, sockets and devices left out). */
export const browseArchiveUrl = (pointId: string, session: string, at: BrowseLocation) => `${base(pointId, session)}/archive?${itemQuery(at)}`;

export const PAGE_SIZE = 200;

/** One directory, page by page ("load more"). A mount is read-only, so a listing never goes stale. */
export const useDirectory = (pointId: string, session: string | null, at: BrowseLocation | null, onUse: () => void) =>
  useInfiniteQuery({
    queryKey: ['browse', pointId, session, at?.partition, at?.ref],
    queryFn: async ({ pageParam }) => {
      onUse();
      return api<BrowseListingDto>(`${base(pointId, session!)}/list?${itemQuery(at!, { limit: String(PAGE_SIZE), ...(pageParam ? { cursor: pageParam } : {}) })}`);
    },
    initialPageParam: '',
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    enabled: Boolean(session && at),
    retry: false,
    staleTime: Infinity,
    gcTime: 5 * 60_000,
  });
