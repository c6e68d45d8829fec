import { PROTECTION_FILTERS, type ProtectionFilter } from '@vaultline/contracts';
import { useEffect, useRef, useState } from 'react';
import { useSearchParams } from 'react-router';
import type { ProtectionPage } from '../../api/overview.ts';

/** The page sizes offered; the first page shows DEFAULT_PAGE_SIZE rows. */
export const PAGE_SIZES = [25, 50, 100] as const;
export const DEFAULT_PAGE_SIZE = 50;

const FILTER_LABEL: Record<ProtectionFilter, string> = {
  unprotected: 'Unprotected',
  attention: 'Needs attention',
  protected: 'Protected',
};

const number = new Intl.NumberFormat('en-US');

/**
 * The protection table's page, state filter and name search, kept in the address (`vms_page`, `vms_size`,
 * `vms_status`, `vms_q`): the page survives the panel's periodic refresh, a reload and the back button.
 */
export function useProtectionPage(): { page: ProtectionPage; pageIndex: number; set(change: { page?: number; size?: number; status?: ProtectionFilter | null; q?: string }): void } {
  const [params, setParams] = useSearchParams();
  const sizeParam = Number(params.get('vms_size'));
  const size = (PAGE_SIZES as readonly number[]).includes(sizeParam) ? sizeParam : DEFAULT_PAGE_SIZE;
  const pageIndex = Math.max(0, Math.floor(Number(params.get('vms_page') ?? '1')) - 1 || 0);
  const status = (PROTECTION_FILTERS as readonly string[]).includes(params.get('vms_status') ?? '') ? (params.get('vms_status') as ProtectionFilter) : undefined;
  const q = params.get('vms_q') ?? '';
  return {
    page: { offset: pageIndex * size, limit: size, ...(status ? { status } : {}), ...(q ? { q } : {}) },
    pageIndex,
    set(change) {
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          const put = (key: string, value: string | null) => (value ? next.set(key, value) : next.delete(key));
          if (change.size !== undefined) put('vms_size', change.size === DEFAULT_PAGE_SIZE ? null : String(change.size));
          if (change.status !== undefined) put('vms_status', change.status);
          if (change.q !== undefined) put('vms_q', change.q.trim() || null);
          // A new size, filter or search starts again at the first page.
          const page = change.page ?? (change.size !== undefined || change.status !== undefined || change.q !== undefined ? 0 : pageIndex);
          put('vms_page', page > 0 ? String(page + 1) : null);
          return next;
        },
        { replace: true },
      );
    },
  };
}

/** Which VMs to show: a state (with how many VMs are in it) and part of a name, both applied by the Director. */
export function ProtectionFilters({
  status,
  q,
  counts,
  onStatus,
  onSearch,
}: {
  status: ProtectionFilter | undefined;
  q: string;
  counts: Record<ProtectionFilter, number>;
  onStatus(status: ProtectionFilter | null): void;
  onSearch(q: string): void;
}) {
  const [text, setText] = useState(q);
  const search = useRef(onSearch);
  useEffect(() => {
    search.current = onSearch;
  });
  // Typing asks the Director once the typing pauses; a search changed elsewhere (the back button) shows here.
  const sent = useRef(q);
  const send = (value: string) => {
    sent.current = value.trim();
    search.current(value);
  };
  useEffect(() => {
    if (q === sent.current) return;
    sent.current = q;
    setText(q);
  }, [q]);
  useEffect(() => {
    if (text.trim() === sent.current) return;
    const timer = setTimeout(() => send(text), 300);
    return () => clearTimeout(timer);
  }, [text]);
  return (
    <div className="toolbar protection-filters" role="search" aria-label="Filter the protection table">
      <label className="inline">
        Show
        <select value={status ?? ''} onChange={(e) => onStatus((e.target.value || null) as ProtectionFilter | null)} data-testid="protection-filter">
          <option value="">All VMs</option>
          {PROTECTION_FILTERS.map((f) => (
            <option key={f} value={f}>
              {FILTER_LABEL[f]} ({number.format(counts[f])})
            </option>
          ))}
        </select>
      </label>
      <label className="inline grow">
        Search by name
        <input
          type="search"
          value={text}
          maxLength={200}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') {
              e.preventDefault();
              send(text);
            }
          }}
          placeholder="VM name"
          data-testid="protection-search"
        />
      </label>
    </div>
  );
}

/** Rows per page, where the page is in the whole ("1–50 of 2,000") and the previous and next pages. */
export function ProtectionPager({ offset, limit, shown, total, busy, onPage, onSize }: { offset: number; limit: number; shown: number; total: number; busy: boolean; onPage(index: number): void; onSize(size: number): void }) {
  const pages = Math.max(1, Math.ceil(total / limit));
  const index = Math.floor(offset / limit);
  const range = total === 0 || shown === 0 ? `0 of ${number.format(total)}` : `${number.format(offset + 1)}–${number.format(offset + shown)} of ${number.format(total)}`;
  return (
    <nav className="toolbar protection-pager" aria-label="Protection table pages" data-testid="protection-pager">
      <label className="inline">
        Rows per page
        <select value={limit} onChange={(e) => onSize(Number(e.target.value))} data-testid="protection-page-size">
          {PAGE_SIZES.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <span className="grow" role="status" aria-live="polite" aria-busy={busy} data-testid="protection-range">
        {range}
        <span className="muted small"> · page {number.format(Math.min(index + 1, pages))} of {number.format(pages)}</span>
      </span>
      <span className="row-inline">
        <button type="button" aria-label="Previous page" onClick={() => onPage(index - 1)} disabled={index === 0}>
          ‹ Previous
        </button>
        <button type="button" aria-label="Next page" onClick={() => onPage(index + 1)} disabled={offset + limit >= total}>
          Next ›
        </button>
      </span>
    </nav>
  );
}
