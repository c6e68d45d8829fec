import { useState } from 'react';
import { Link } from 'react-router';
import { useRepositories, useRepositoriesStats } from '../../api/repositories.ts';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { formatBytes, formatRatio } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { AddRepositoryForm } from './AddRepositoryForm.tsx';
import { CopyJobsPanel } from './CopyJobsPanel.tsx';
import { TableHead } from '../../components/TableHead.tsx';

export default function RepositoriesPage() {
  const me = useMe();
  const repositories = useRepositories();
  const stats = useRepositoriesStats((repositories.data ?? []).map((r) => r.id));
  const [adding, setAdding] = useState(false);
  const [added, setAdded] = useState<string | null>(null);
  const admin = can(me.role, 'admin');

  return (
    <Page
      title="Repositories"
      subtitle="Deduplicated, compressed stores of restore points; every restore point is a full image by reference."
      actions={
        admin &&
        !adding && (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            Add repository
          </button>
        )
      }
    >
      {added && (
        <div className="alert ok" role="status">
          Repository {added} added.
        </div>
      )}
      {adding && (
        <AddRepositoryForm
          onCancel={() => setAdding(false)}
          onAdded={(r) => {
            setAdding(false);
            setAdded(r.name);
          }}
        />
      )}
      {repositories.isPending && <Loading what="repositories" />}
      {repositories.isError && <LoadError what="repositories" error={repositories.error} />}
      {repositories.data?.length === 0 && <p className="muted">No repository yet.</p>}
      {repositories.data && repositories.data.length > 0 && (
        <section className="card">
          <table className="cards" data-testid="repositories">
            <TableHead columns={['Repository', 'Restore points', 'Logical', 'Stored', 'Dedup', 'Compression', 'Free']} />
            <tbody>
              {repositories.data.map((r, i) => {
                const s = stats[i];
                return (
                  <tr key={r.id} data-testid="repository-row">
                    <td data-label="Repository" className="name-cell">
                      <Link to={paths.repository(r.id)}>
                        <strong>{r.name}</strong>
                      </Link>{' '}
                      <span className="pill">{r.kind}</span> {r.encrypted && <span className="pill ok">encrypted</span>} {r.hardened && <span className="pill ok">hardened</span>}
                      <div className="muted small mono">{r.location}</div>
                    </td>
                    {s?.data ? (
                      <>
                        <td data-label="Restore points">{s.data.restorePoints}</td>
                        <td data-label="Logical">{formatBytes(s.data.logicalBytes)}</td>
                        <td data-label="Stored">{formatBytes(s.data.storedBytes)}</td>
                        <td data-label="Dedup">{formatRatio(s.data.dedupRatio)}</td>
                        <td data-label="Compression">{formatRatio(s.data.compressionRatio)}</td>
                        <td data-label="Free">{s.data.freeBytes !== null ? `${formatBytes(s.data.freeBytes)} of ${formatBytes(s.data.totalBytes ?? 0)}` : <span className="muted">not reported</span>}</td>
                      </>
                    ) : (
                      <td colSpan={6} className={s?.isError ? 'reason' : 'muted'}>
                        {s?.isError ? s.error.message : 'reading…'}
                      </td>
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
          <p className="small muted">
            Logical: the size of every restore point’s disks added up. Dedup: non-zero logical data ÷ unique data. Compression: unique data ÷ bytes stored.
          </p>
        </section>
      )}
      {repositories.data && <CopyJobsPanel repositories={repositories.data} operator={can(me.role, 'operator')} />}
    </Page>
  );
}
