import { useMemo, useState } from 'react';
import { Link, useParams } from 'react-router';
import type { RepositoryRestorePoint } from '@vaultline/contracts';
import { useRepositories, useRepositoryStats, useRestorePoints } from '../../api/repositories.ts';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { formatBytes, formatDateTime, formatDateTimeSeconds, formatRatio } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { PointFlags } from '../restores/PointFlags.tsx';
import { CapacityChart } from './CapacityChart.tsx';
import { MaintenancePanel } from './MaintenancePanel.tsx';
import { TableHead } from '../../components/TableHead.tsx';

export default function RepositoryPage() {
  const { id } = useParams();
  const operator = can(useMe().role, 'operator');
  const repositories = useRepositories();
  const repo = repositories.data?.find((r) => r.id === id);
  const stats = useRepositoryStats(id!);
  const points = useRestorePoints(id!);
  const [vm, setVm] = useState('');
  const byVm = useMemo(() => {
    const m = new Map<string, RepositoryRestorePoint[]>();
    for (const p of points.data ?? []) m.set(p.vmName, [...(m.get(p.vmName) ?? []), p]);
    return [...m].sort((a, b) => a[0].localeCompare(b[0]));
  }, [points.data]);
  const shown = vm ? byVm.filter(([name]) => name === vm) : byVm;

  return (
    <Page title={repo ? `Repository ${repo.name}` : 'Repository'} subtitle={repo && <span className="mono">{repo.location}</span>}>
      <p>
        <Link to={paths.repositories}>← All repositories</Link>
      </p>
      {stats.data && (
        <div className="grid stats">
          <div className="card stat">
            <span className="muted small">Restore points</span>
            <strong>{stats.data.restorePoints}</strong>
          </div>
          <div className="card stat">
            <span className="muted small">Logical / stored</span>
            <strong>
              {formatBytes(stats.data.logicalBytes)} / {formatBytes(stats.data.storedBytes)}
            </strong>
          </div>
          <div className="card stat">
            <span className="muted small">Dedup · compression</span>
            <strong>
              {formatRatio(stats.data.dedupRatio)} · {formatRatio(stats.data.compressionRatio)}
            </strong>
          </div>
          <div className="card stat">
            <span className="muted small">Free</span>
            <strong>{stats.data.freeBytes !== null ? formatBytes(stats.data.freeBytes) : 'not reported'}</strong>
          </div>
        </div>
      )}
      {stats.isError && <LoadError what="the repository's figures" error={stats.error} />}
      <CapacityChart repositoryId={id!} />
      <section className="card" aria-labelledby="points-title">
        <div className="row">
          <h3 id="points-title">Restore points</h3>
          <label className="inline">
            VM
            <select value={vm} onChange={(e) => setVm(e.target.value)}>
              <option value="">All VMs</option>
              {byVm.map(([name]) => (
                <option key={name}>{name}</option>
              ))}
            </select>
          </label>
        </div>
        {points.isPending && <Loading what="restore points" />}
        {points.isError && <LoadError what="restore points" error={points.error} />}
        {points.data?.length === 0 && <p className="muted">No restore point in this repository yet.</p>}
        {shown.map(([name, list]) => (
          <div key={name} className="vm-points" data-testid="vm-points">
            <h4>
              {name} <span className="muted small">{list.length} restore point{list.length === 1 ? '' : 's'}</span>
            </h4>
            <table className="cards" aria-label={`Restore points of ${name}`}>
              <TableHead columns={['Taken', 'Size', 'New data stored', 'State', 'Run']} actions="Actions" />
              <tbody>
                {list.map((p) => (
                  <tr key={p.id} data-testid="point-row">
                    <td data-label="Taken">{formatDateTime(p.createdAt)}</td>
                    <td data-label="Size">{formatBytes(p.logicalBytes)}</td>
                    <td data-label="New data stored">{formatBytes(p.newBytes)}</td>
                    <td data-label="State">
                      <PointFlags point={p} />
                    </td>
                    <td data-label="Run">{p.runId ? <Link to={paths.run(p.runId)}>run</Link> : <span className="muted">—</span>}</td>
                    <td className="actions">
                      {operator && (
                        <>
                          <Link className="button" to={paths.browseFiles(p.id)} aria-label={`Browse files of ${p.vmName} from ${formatDateTimeSeconds(p.createdAt)}`}>
                            Browse files
                          </Link>
                          <Link className="button" to={paths.restorePoint(p.id)} aria-label={`Restore ${p.vmName} from ${formatDateTimeSeconds(p.createdAt)}`}>
                            Restore…
                          </Link>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      </section>
      <MaintenancePanel repositoryId={id!} />
    </Page>
  );
}
