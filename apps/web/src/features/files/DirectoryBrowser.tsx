import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { Link } from 'react-router';
import type { BrowseEntryDto, BrowseEntryType } from '@vaultline/contracts';
import { browseArchiveUrl, browseFileUrl, useDirectory, type BrowseLocation } from '../../api/file-restore.ts';
import { LoadError, Loading } from '../../components/Page.tsx';
import { ApiRequestError } from '../../lib/api.ts';
import { formatBytes, formatDateTime } from '../../lib/format.ts';
import { crumbs, safeName, safeText } from './names.ts';

const TYPE: Record<BrowseEntryType, string> = {
  file: 'file',
  directory: 'folder',
  symlink: 'symbolic link',
  fifo: 'FIFO',
  socket: 'socket',
  'char-device': 'character device',
  'block-device': 'block device',
  other: 'other',
};

type SortKey = 'name' | 'type' | 'size' | 'mtime';
const COLUMNS: Array<{ key: SortKey; label: string }> = [
  { key: 'name', label: 'Name' },
  { key: 'type', label: 'Type' },
  { key: 'size', label: 'Size' },
  { key: 'mtime', label: 'Modified' },
];
/** The narrow window's Sort by list: each column's order in words, ascending then descending. */
const SORT_WORDS: Record<SortKey, [string, string]> = {
  name: ['A to Z', 'Z to A'],
  type: ['A to Z', 'Z to A'],
  size: ['smallest first', 'largest first'],
  mtime: ['oldest first', 'newest first'],
};

/** Up to this width (styles.css) a table.cards shows its rows as cards and its headings to screen readers only. */
const CARDS = '(max-width: 760px)';
const cardsQuery = () => (typeof window.matchMedia === 'function' ? window.matchMedia(CARDS) : null);
/** Whether the window is narrow enough for the list to show as cards (its sort buttons then hidden with its headings). */
function useCards(): boolean {
  return useSyncExternalStore(
    (changed) => {
      const m = cardsQuery();
      m?.addEventListener('change', changed);
      return () => m?.removeEventListener('change', changed);
    },
    () => cardsQuery()?.matches ?? false,
  );
}

const byName = (a: BrowseEntryDto, b: BrowseEntryDto) => a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: 'base' }) || (a.ref < b.ref ? -1 : 1);
const compare: Record<SortKey, (a: BrowseEntryDto, b: BrowseEntryDto) => number> = {
  name: byName,
  type: (a, b) => TYPE[a.type].localeCompare(TYPE[b.type]) || byName(a, b),
  size: (a, b) => a.size - b.size || byName(a, b),
  mtime: (a, b) => Date.parse(a.mtime) - Date.parse(b.mtime) || byName(a, b),
};

/** A name shown safely: escapes for control and reordering characters, a mark for names that are not UTF-8. */
export function EntryName({ name, lossy }: { name: string; lossy?: boolean }) {
  return (
    <span className="entry-name">
      {safeName(name).map((p, i) =>
        p.escaped ? (
          <span key={i} className="escape" title="a character that would not show">
            {p.text}
          </span>
        ) : (
          <span key={i}>{p.text}</span>
        ),
      )}
      {lossy && (
        <span className="pill" title="This name is not valid UTF-8; it is shown with replacement characters, and downloads use its exact bytes.">
          not UTF-8
        </span>
      )}
    </span>
  );
}

/**
 * One folder of a mounted partition: where it is (a breadcrumb), its entries page by page, sortable,
 * with downloads. Symbolic links are shown with their targets and can be neither opened nor downloaded.
 */
export function DirectoryBrowser(props: {
  pointId: string;
  session: string;
  at: BrowseLocation;
  partitionTitle: string;
  /** A link to another folder of this partition. */
  hrefOf: (ref: string) => string;
  used: () => void;
  onNotFound: () => void;
}) {
  const { pointId, session, at } = props;
  const dir = useDirectory(pointId, session, at, props.used);
  const [sort, setSort] = useState<{ key: SortKey; asc: boolean }>({ key: 'name', asc: true });
  const cards = useCards();
  const loaded = useMemo(() => dir.data?.pages.flatMap((p) => p.entries) ?? [], [dir.data]);
  const entries = useMemo(() => {
    const folder = (e: BrowseEntryDto) => e.type === 'directory';
    return [...loaded].sort((a, b) => {
      if (folder(a) !== folder(b)) return folder(a) ? -1 : 1;
      // Folders show no size: by size they stay in name order.
      if (folder(a) && sort.key === 'size') return byName(a, b);
      return (sort.asc ? 1 : -1) * compare[sort.key](a, b);
    });
  }, [loaded, sort]);
  const first = dir.data?.pages[0];
  const total = first?.total ?? 0;
  const trail = crumbs(at.ref);
  const here = trail.at(-1)?.name;
  const archiveName = here !== undefined ? `${safeText(here)}.tar` : `${at.partition}.tar`;

  // Into another folder: the link that was clicked is gone, so focus goes to where the page now is.
  const current = useRef<HTMLSpanElement>(null);
  const shown = useRef(at.ref);
  useEffect(() => {
    if (shown.current === at.ref) return;
    shown.current = at.ref;
    current.current?.focus();
  }, [at.ref]);

  // Not found may mean the session is gone (idle timeout): the page asks the Director and says so.
  const { onNotFound } = props;
  useEffect(() => {
    if (dir.error instanceof ApiRequestError && dir.error.status === 404) onNotFound();
  }, [dir.error, onNotFound]);

  const header = (c: (typeof COLUMNS)[number]) => {
    const active = sort.key === c.key;
    return (
      <th key={c.key} scope="col" aria-sort={active ? (sort.asc ? 'ascending' : 'descending') : 'none'} className={c.key === 'size' ? 'num' : undefined}>
        {/* As cards the headings are visually hidden: a visible Sort by list stands in for their buttons (still there for screen readers). */}
        <button type="button" className="sort" tabIndex={cards ? -1 : undefined} onClick={() => setSort({ key: c.key, asc: active ? !sort.asc : true })}>
          {c.label}
          <span aria-hidden="true" className="sort-mark">
            {active ? (sort.asc ? '▲' : '▼') : ''}
          </span>
        </button>
      </th>
    );
  };

  return (
    <section className="card browser" aria-labelledby="browser-title" data-testid="directory-browser">
      <div className="row">
        <h3 id="browser-title">{props.partitionTitle}</h3>
        <a className="button" href={browseArchiveUrl(pointId, session, at)} download onClick={props.used} data-testid="folder-archive">
          Download {here === undefined ? 'the whole partition' : 'this folder'} as .tar<span className="sr-only"> ({archiveName})</span>
        </a>
      </div>
      <nav aria-label="Path" className="crumbs">
        <ol>
          <li>
            {trail.length === 0 ? (
              <span aria-current="page" tabIndex={-1} ref={current}>
                / (root)
              </span>
            ) : (
              <Link to={props.hrefOf('')}>/ (root)</Link>
            )}
          </li>
          {trail.map((c, i) => (
            <li key={c.ref}>
              {i === trail.length - 1 ? (
                <span aria-current="page" tabIndex={-1} ref={current}>
                  <EntryName name={c.name} />
                </span>
              ) : (
                <Link to={props.hrefOf(c.ref)}>
                  <EntryName name={c.name} />
                </Link>
              )}
            </li>
          ))}
        </ol>
      </nav>
      <p className="muted small">Archives are tar files (any tar, 7-Zip or Windows’ tar.exe opens them): folders, files and symbolic links as links; FIFOs, sockets and device files are left out.</p>
      {dir.isPending && <Loading what="the folder" />}
      {dir.isError && <LoadError what="the folder" error={dir.error} />}
      {dir.data && total === 0 && <p className="muted">This folder is empty.</p>}
      {dir.data && total > 0 && (
        <>
          {cards && (
            <label className="inline">
              Sort by
              <select
                value={`${sort.key} ${sort.asc ? 'asc' : 'desc'}`}
                onChange={(e) => {
                  const [key, order] = e.target.value.split(' ');
                  setSort({ key: key as SortKey, asc: order === 'asc' });
                }}
              >
                {COLUMNS.flatMap((c) => [
                  <option key={`${c.key} asc`} value={`${c.key} asc`}>
                    {c.label}, {SORT_WORDS[c.key][0]}
                  </option>,
                  <option key={`${c.key} desc`} value={`${c.key} desc`}>
                    {c.label}, {SORT_WORDS[c.key][1]}
                  </option>,
                ])}
              </select>
            </label>
          )}
          <table className="files cards" data-testid="entries" aria-label={`Contents of ${here === undefined ? 'the root folder' : safeText(here)}`}>
            <thead>
              <tr>
                {COLUMNS.map(header)}
                <th scope="col">
                  <span className="sr-only">Download</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.ref} data-testid="entry" data-type={e.type}>
                  <td data-label="Name" className="name-cell">
                    {e.type === 'directory' ? (
                      <Link to={props.hrefOf(e.ref)} className="folder">
                        <EntryName name={e.name} lossy={e.nameLossy} />
                        <span aria-hidden="true" className="muted">
                          /
                        </span>
                      </Link>
                    ) : (
                      <EntryName name={e.name} lossy={e.nameLossy} />
                    )}
                    {e.type === 'symlink' && (
                      <span className="link-target" data-testid="link-target">
                        {' → '}
                        <EntryName name={e.target ?? ''} />
                      </span>
                    )}
                  </td>
                  <td data-label="Type">{TYPE[e.type]}</td>
                  <td data-label="Size" className={cards ? undefined : 'num'}>
                    {e.type === 'file' ? formatBytes(e.size) : <span className="muted">—</span>}
                  </td>
                  <td data-label="Modified">
                    <time dateTime={e.mtime}>{formatDateTime(e.mtime)}</time>
                  </td>
                  <td className="actions">
                    {e.type === 'file' ? (
                      <a className="button" href={browseFileUrl(pointId, session, { partition: at.partition, ref: e.ref })} download onClick={props.used} title={`${safeText(e.name)} · ${e.size.toLocaleString()} bytes`}>
                        Download<span className="sr-only"> {safeText(e.name)}</span>
                      </a>
                    ) : e.type === 'directory' ? (
                      <a className="button" href={browseArchiveUrl(pointId, session, { partition: at.partition, ref: e.ref })} download onClick={props.used}>
                        .tar<span className="sr-only"> of {safeText(e.name)}</span>
                      </a>
                    ) : e.type === 'symlink' ? (
                      <span className="muted small">links are not followed</span>
                    ) : (
                      <span className="muted small">never read</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="row more">
            <span className="muted small" role="status" data-testid="entry-count">
              {loaded.length < total ? `${loaded.length} of ${total} entries loaded; sorting applies to those` : `${total} ${total === 1 ? 'entry' : 'entries'}`}
            </span>
            {dir.hasNextPage && (
              <button type="button" onClick={() => void dir.fetchNextPage()} disabled={dir.isFetchingNextPage}>
                {dir.isFetchingNextPage ? 'Loading…' : 'Load more'}
              </button>
            )}
          </div>
        </>
      )}
    </section>
  );
}
