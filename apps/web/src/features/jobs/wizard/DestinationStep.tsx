import { Link } from 'react-router';
import type { RepositoryDto } from '@vaultline/contracts';
import { useRepositoriesStats } from '../../../api/repositories.ts';
import { paths } from '../../../config/paths.ts';
import { formatBytes, formatRatio } from '../../../lib/format.ts';
import { useMe } from '../../../lib/me.ts';
import { can } from '../../../lib/roles.ts';
import type { WizardState } from './state.ts';

export function DestinationStep({ state, set, repositories }: { state: WizardState; set: (patch: Partial<WizardState>) => void; repositories: RepositoryDto[] }) {
  const me = useMe();
  const stats = useRepositoriesStats(repositories.map((r) => r.id));
  return (
    <fieldset className="step-body choices">
      <legend>Repository the restore points go to</legend>
      {repositories.length === 0 && (
        <p className="muted">
          There is no repository yet. {can(me.role, 'admin') ? <Link to={paths.repositories}>Add one</Link> : 'An admin has to add one.'}
        </p>
      )}
      {repositories.map((r, i) => {
        const s = stats[i];
        return (
          <label key={r.id} className={`choice ${state.repositoryId === r.id ? 'chosen' : ''}`}>
            <input type="radio" name="repository" value={r.id} checked={state.repositoryId === r.id} onChange={() => set({ repositoryId: r.id })} />
            <span className="choice-text">
              <strong>{r.name}</strong> <span className="pill">{r.kind}</span> {r.encrypted && <span className="pill ok">encrypted</span>}
              <span className="muted small block">{r.location}</span>
              <span className="small block">
                {s?.isPending && <span className="muted">reading its figures…</span>}
                {s?.isError && <span className="reason">{s.error.message}</span>}
                {s?.data && (
                  <>
                    {s.data.restorePoints} restore point{s.data.restorePoints === 1 ? '' : 's'} · {formatBytes(s.data.storedBytes)} stored · dedup {formatRatio(s.data.dedupRatio)} · compression{' '}
                    {formatRatio(s.data.compressionRatio)}
                    {s.data.freeBytes !== null && ` · ${formatBytes(s.data.freeBytes)} free`}
                  </>
                )}
              </span>
            </span>
          </label>
        );
      })}
      {can(me.role, 'admin') && repositories.length > 0 && (
        <p className="small muted">
          Another destination? <Link to={paths.repositories}>Add a repository</Link> (the job you are building is not saved yet).
        </p>
      )}
    </fieldset>
  );
}
