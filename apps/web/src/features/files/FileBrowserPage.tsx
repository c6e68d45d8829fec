import { useCallback } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import type { BrowsePartitionDto } from '@vaultline/contracts';
import { useRestorePoint } from '../../api/restores.ts';
import { FormError } from '../../components/FormError.tsx';
import { NotAllowed, Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { formatDateTime, formatDuration } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { useAction } from '../../lib/use-action.ts';
import { DirectoryBrowser } from './DirectoryBrowser.tsx';
import { diskLabel, partitionName, PartitionTable } from './PartitionTable.tsx';
import { useBrowseSession, type BrowseSessionState } from './use-browse-session.ts';

/** "30 min", "1 min", or "90 s". */
const idle = (seconds: number) => (seconds % 60 === 0 ? `${seconds / 60} min` : formatDuration(seconds));

function SessionProblem({ state, reopen }: { state: BrowseSessionState; reopen: () => void }) {
  if (state.kind === 'opening') {
    return (
      <p className="muted" role="status">
        Opening the restore point: mounting its disks read-only…
      </p>
    );
  }
  if (state.kind === 'failed') {
    return (
      <div className="alert error" role="alert" data-testid="browse-failed">
        <p className="prewrap">{state.message}</p>
        {state.status === 503 ? (
          <p className="small">
            Restore points are mounted by the file-level restore helper (vaultline-flr), a service of its own beside the Director that needs CAP_SYS_ADMIN and the packages libnbd-bin and fuse3 (ntfs-3g and fusefat for those filesystems); see “Files, from any restore point” in the README. An administrator can enable it; backups and restores are not affected.
          </p>
        ) : (
          <p>
            <button type="button" onClick={reopen}>
              Try again
            </button>
          </p>
        )}
      </div>
    );
  }
  if (state.kind === 'closed') {
    return (
      <div className="alert ok" role="status" data-testid="browse-closed">
        <p>Session closed: the restore point’s disks are unmounted.</p>
        <button type="button" onClick={reopen}>
          Browse again
        </button>
      </div>
    );
  }
  if (state.kind === 'ended') {
    return (
      <div className="alert warn" role="alert" data-testid="browse-ended">
        <p>
          <strong>This browse session has ended.</strong> The Director closes a session that is not used for {idle(state.idleTimeoutSeconds)} and unmounts its disks.
        </p>
        <button type="button" className="primary" onClick={reopen}>
          Open a new session
        </button>
      </div>
    );
  }
  return null;
}

function Browser({ pointId }: { pointId: string }) {
  const point = useRestorePoint(pointId);
  const { state, session, used, check, close, reopen } = useBrowseSession(pointId);
  const closing = useAction();
  const [params, setParams] = useSearchParams();
  const view = state.kind === 'open' || state.kind === 'closing' ? state.view : null;
  const all = view?.disks.flatMap((d, i) => d.partitions.map((p) => ({ p, disk: diskLabel(point.data, d.key, i) }))) ?? [];
  const mounted = all.filter((x) => x.p.mounted);
  const wanted = params.get('partition') ?? (mounted.length === 1 ? mounted[0]!.p.id : null);
  const chosen = all.find((x) => x.p.id === wanted);
  const ref = params.get('ref') ?? '';

  const hrefOf = useCallback(
    (r: string) => `${paths.browseFiles(pointId)}?${new URLSearchParams({ ...(wanted ? { partition: wanted } : {}), ...(r ? { ref: r } : {}) }).toString()}`,
    [pointId, wanted],
  );
  const choose = (p: BrowsePartitionDto) => setParams(new URLSearchParams({ partition: p.id }));
  const onNotFound = useCallback(() => void check(), [check]);

  const title = point.data ? `Files of ${point.data.vmName}` : 'Browse files';
  const subtitle = point.data ? `Restore point of ${formatDateTime(point.data.createdAt)} in ${point.data.repository}, mounted read-only: nothing in it can change.` : undefined;
  return (
    <Page
      title={title}
      subtitle={subtitle}
      actions={
        view && (
          <>
            <span className="muted small" data-testid="session-note">
              Session open · closed after {idle(view.idleTimeoutSeconds)} without use
            </span>
            <button type="button" onClick={() => void closing.run(close)} disabled={state.kind === 'closing'}>
              {state.kind === 'closing' ? 'Closing…' : 'Close'}
              <span className="sr-only"> the browse session</span>
            </button>
          </>
        )
      }
    >
      <p>{point.data ? <Link to={paths.repository(point.data.repositoryId)}>← Restore points in {point.data.repository}</Link> : <Link to={paths.repositories}>← Repositories</Link>}</p>
      <FormError message={closing.error} />
      <SessionProblem state={state} reopen={reopen} />
      {view && (
        <>
          <PartitionTable view={view} point={point.data} chosen={chosen?.p.id ?? null} choose={choose} />
          {mounted.length === 0 && <p className="muted">No partition of this restore point could be opened; the reasons are listed above.</p>}
          {wanted && !chosen && (
            <div className="alert error" role="alert">
              This restore point has no partition {wanted}; choose one above.
            </div>
          )}
          {chosen && !chosen.p.mounted && (
            <div className="alert error" role="alert">
              {partitionName(chosen.p)} of {chosen.disk} is not opened: {chosen.p.reason ?? 'no reason given'}.
            </div>
          )}
          {chosen?.p.mounted && session && (
            <DirectoryBrowser
              key={`${session} ${chosen.p.id}`}
              pointId={pointId}
              session={session}
              at={{ partition: chosen.p.id, ref }}
              partitionTitle={`${chosen.disk} · ${partitionName(chosen.p)} · ${chosen.p.filesystem ?? ''}${chosen.p.label ? ` “${chosen.p.label}”` : ''}`}
              hrefOf={hrefOf}
              used={used}
              onNotFound={onNotFound}
            />
          )}
          {!chosen && mounted.length > 1 && <p className="muted">Choose a partition to browse.</p>}
        </>
      )}
    </Page>
  );
}

/** /restore-points/:id/files?partition=d0p1&ref=<base64url path>: the files of a restore point (operator role). */
export default function FileBrowserPage() {
  const me = useMe();
  const { id } = useParams();
  if (!can(me.role, 'operator')) {
    return (
      <Page title="Browse files">
        <NotAllowed role="operator" />
      </Page>
    );
  }
  return <Browser key={id} pointId={id!} />;
}
