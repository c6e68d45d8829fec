import type { ProtectionOverview, VmProtection } from '@vaultline/contracts';
import { Link } from 'react-router';
import { useEffect, useState } from 'react';
import { useProtection, useRefreshInventory, type ProtectionPage } from '../../api/overview.ts';
import { StatusPill } from '../../components/StatusPill.tsx';
import { paths } from '../../config/paths.ts';
import { ago, formatBytes, formatDateTime } from '../../lib/format.ts';
import { ProtectionFilters, ProtectionPager, useProtectionPage } from './ProtectionPager.tsx';

const REASON: Record<NonNullable<VmProtection['unprotectedReason']>, string> = {
  no_job: 'no job covers it',
  no_restore_point: 'no restore point yet',
};

/** Runs of the last 24 hours by result, and what runs next. */
function Summary({ data }: { data: ProtectionOverview }) {
  const { last24h, counts, nextRuns } = data;
  return (
    <div className="grid figures" data-testid="protection-summary">
      <section className="card figure">
        <h2 className="figure-title">VMs</h2>
        <p>
          <strong data-testid="count-protected">{counts.protected}</strong> protected · <strong data-testid="count-unprotected" className={counts.unprotected ? 'bad-text' : undefined}>{counts.unprotected}</strong> unprotected
        </p>
      </section>
      <section className="card figure" data-testid="last-24h">
        <h2 className="figure-title">Last 24 hours</h2>
        <p>
          <strong>{last24h.succeeded}</strong> succeeded · <strong>{last24h.warnings}</strong> warnings · <strong className={last24h.failed ? 'bad-text' : undefined}>{last24h.failed}</strong> failed
          {last24h.running > 0 && <> · {last24h.running} running</>}
        </p>
      </section>
      <section className="card figure" data-testid="next-runs">
        <h2 className="figure-title">Next runs</h2>
        {nextRuns.length === 0 ? (
          <p className="muted">No scheduled job</p>
        ) : (
          <ul className="plain">
            {nextRuns.slice(0, 3).map((r) => (
              <li key={r.jobId}>
                <Link to={paths.editJob(r.jobId)}>{r.jobName}</Link> <span className="muted small">{formatDateTime(r.at)}</span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}

function LastBackup({ vm }: { vm: VmProtection }) {
  const b = vm.lastBackup;
  if (!b) return <span className="muted">never</span>;
  return (
    <div className="last-backup">
      <Link to={paths.run(b.runId)} aria-label={`Last backup of ${vm.name}: ${b.status}, ${ago(b.at)}`}>
        {ago(b.at)}
      </Link>{' '}
      <StatusPill status={b.status} />
      <div className="muted small">
        {b.mode ?? 'nothing read'}
        {b.mode && <> · {formatBytes(b.bytesWritten)} written</>}
      </div>
      {b.error && (b.status === 'failed' || b.status === 'warning') && <div className="reason small">{b.error}</div>}
    </div>
  );
}

/** When the inventories shown were read, and a way to read them now (the Director keeps them a minute). */
function InventoryAge({ asOf, page }: { asOf: string | null; page: ProtectionPage }) {
  const refresh = useRefreshInventory();
  const [state, setState] = useState<{ busy: boolean; error: string | null }>({ busy: false, error: null });
  if (!asOf) return null;
  const run = () => {
    setState({ busy: true, error: null });
    refresh(page).then(
      () => setState({ busy: false, error: null }),
      (err: Error) => setState({ busy: false, error: err.message }),
    );
  };
  return (
    <p className="muted small inventory-age">
      Inventory as of {formatDateTime(asOf)}{' '}
      <button type="button" className="link" onClick={run} disabled={state.busy}>
        {state.busy ? 'Reading inventory…' : 'Refresh inventory'}
      </button>
      {state.error && (
        <span className="alert error" role="alert">
          {' '}
          Cannot refresh: {state.error}
        </span>
      )}
    </p>
  );
}

/** Every VM in an inventory or a job: protected or not, its last backup, restore points and next run. */
export function ProtectionPanel() {
  const { page, pageIndex, set } = useProtectionPage();
  const protection = useProtection(page);
  const total = protection.data?.total;
  // A page that no longer exists (fewer VMs since, or an old link) becomes the last one that does.
  useEffect(() => {
    if (total !== undefined && !protection.isPlaceholderData && pageIndex > 0 && page.offset >= total) set({ page: Math.max(0, Math.ceil(total / page.limit) - 1) });
  }, [total, protection.isPlaceholderData, pageIndex, page.offset, page.limit, set]);
  if (protection.isPending)
    return (
      <p className="muted" role="status">
        Reading protection…
      </p>
    );
  if (protection.isError) return <div className="alert error">Cannot read protection: {protection.error.message}</div>;
  const data = protection.data;
  const all = data.counts.protected + data.counts.unprotected;
  const filtered = page.status !== undefined || page.q !== undefined;
  const busy = protection.isPlaceholderData;
  return (
    <>
      <Summary data={data} />
      <section className="card" data-testid="protection">
        <div className="row">
          <h2 className="card-title">Protection</h2>
          <span className="muted small">{filtered ? `${data.total} of ${all} VMs` : `${data.total} VMs`}</span>
        </div>
        <InventoryAge asOf={data.inventoryAsOf} page={page} />
        {data.inventoryProblems.map((p) => (
          <p key={p.vcenterId} className="alert error" role="alert">
            {p.vcenterName}: {p.reason}. {p.asOf ? `Its VMs are shown as they were at ${formatDateTime(p.asOf)}.` : 'Its VMs are shown from jobs only.'}
          </p>
        ))}
        {(all > 0 || filtered) && (
          <ProtectionFilters status={page.status} q={page.q ?? ''} counts={data.counts} onStatus={(status) => set({ status })} onSearch={(q) => set({ q })} />
        )}
        {data.vms.length === 0 && filtered ? (
          <p className="muted" role="status">
            No VM matches.
          </p>
        ) : data.vms.length === 0 && data.total === 0 ? (
          <p className="muted">
            No VM yet. <Link to={paths.vcenters}>Add a vCenter</Link> or <Link to={paths.newJob}>create a job</Link>.
          </p>
        ) : (
          <table className="cards protection" aria-busy={busy} aria-label="Protection of each VM" style={busy ? { opacity: 0.6 } : undefined}>
            <thead>
              <tr>
                <th scope="col">VM</th>
                <th scope="col">Protection</th>
                <th scope="col">Last backup</th>
                <th scope="col">Restore points</th>
                <th scope="col">Next run</th>
              </tr>
            </thead>
            <tbody>
              {data.vms.map((vm) => (
                <tr key={vm.key} data-testid="protection-row" data-protected={vm.protected}>
                  <td data-label="VM" className="name-cell">
                    <strong>{vm.name}</strong>
                    <div className="muted small">
                      {vm.vcenterName ?? 'unknown vCenter'}
                      {!vm.inInventory && ' · not in the inventory'}
                    </div>
                  </td>
                  <td data-label="Protection">
                    {vm.protected ? (
                      <span className="pill ok" data-testid="protection-state">
                        Protected
                      </span>
                    ) : (
                      <span className="pill bad" data-testid="protection-state">
                        Unprotected
                      </span>
                    )}
                    <div className="muted small">{vm.unprotectedReason ? REASON[vm.unprotectedReason] : vm.jobs.map((j) => j.name).join(', ')}</div>
                  </td>
                  <td data-label="Last backup">
                    <LastBackup vm={vm} />
                  </td>
                  <td data-label="Restore points">
                    {vm.restorePoints}
                    {vm.newestPointAt && <div className="muted small">newest {ago(vm.newestPointAt)}</div>}
                  </td>
                  <td data-label="Next run">{vm.nextRunAt ? formatDateTime(vm.nextRunAt) : <span className="muted">not scheduled</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {data.total > 0 && <ProtectionPager offset={page.offset} limit={page.limit} shown={data.vms.length} total={data.total} busy={busy} onPage={(i) => set({ page: i })} onSize={(size) => set({ size })} />}
      </section>
    </>
  );
}
