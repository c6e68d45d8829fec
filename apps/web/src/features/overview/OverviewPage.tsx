import { Link } from 'react-router';
import type { ComponentHealth } from '@vaultline/contracts';
import { useHealth } from '../../api/health.ts';
import { Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { InventoryPanel } from './InventoryPanel.tsx';
import { RecentRuns } from './RecentRuns.tsx';

function Light({ ok, label }: { ok: boolean; label: string }) {
  return (
    <span className={`light ${ok ? 'ok' : 'bad'}`} role="status" aria-label={`${label}: ${ok ? 'ok' : 'down'}`}>
      {ok ? 'OK' : 'Down'}
    </span>
  );
}

function ComponentCard({ name, detail, health }: { name: string; detail: string; health: ComponentHealth }) {
  return (
    <section className="card component" data-testid={`health-${name.toLowerCase()}`}>
      <div className="row">
        <h3>{name}</h3>
        <Light ok={health.ok} label={name} />
      </div>
      <p className="muted">{detail}</p>
      {health.ok ? <p className="muted small">answered in {health.latencyMs ?? '?'} ms</p> : <p className="reason">{health.reason}</p>}
    </section>
  );
}

export default function OverviewPage() {
  const health = useHealth();

  if (health.isPending) return <p className="muted">Checking…</p>;
  if (health.isError) return <div className="alert error">Cannot read health: {health.error.message}</div>;
  const h = health.data;
  const online = h.transporters.filter((t) => t.online).length;

  return (
    <Page
      title="Overview"
      actions={
        <span className={`pill big ${h.ok ? 'ok' : 'bad'}`} data-testid="overall">
          {h.ok ? 'All systems go' : 'Needs attention'}
        </span>
      }
    >
      <div className="grid">
        <ComponentCard name="PostgreSQL" detail="Jobs, runs, restore points, users" health={h.postgres} />
        <ComponentCard name="Redis" detail="Work queue to the Transporters" health={h.redis} />
        <section className="card component" data-testid="health-transporters">
          <div className="row">
            <h3>Transporters</h3>
            <Light ok={online > 0} label="Transporters" />
          </div>
          <p className="muted">
            {online} of {h.transporters.length} online · <Link to={paths.transporters}>details</Link>
          </p>
          <p className="muted small">Director {h.version}</p>
        </section>
      </div>
      <InventoryPanel />
      <RecentRuns />
    </Page>
  );
}
