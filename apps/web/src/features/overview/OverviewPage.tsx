import { Link } from 'react-router';
import type { ComponentHealth } from '@vaultline/contracts';
import { useHealth } from '../../api/health.ts';
import { Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { InventoryPanel } from './InventoryPanel.tsx';
import { ProtectionPanel } from './ProtectionPanel.tsx';
import { RecentRuns } from './RecentRuns.tsx';

/** One component of the appliance in the status strip: a dot, its name and, when it is down, why. */
function Status({ name, ok, detail, testId }: { name: string; ok: boolean; detail: string; testId: string }) {
  return (
    <li className={`status-item ${ok ? 'ok' : 'bad'}`} data-testid={testId}>
      <span className="dot" role="status" aria-label={`${name}: ${ok ? 'ok' : 'down'}`} />
      <span>
        {name} <span className={ok ? 'muted small' : 'small'}>{detail}</span>
      </span>
    </li>
  );
}

function componentDetail(h: ComponentHealth): string {
  return h.ok ? `${h.latencyMs ?? '?'} ms` : (h.reason ?? 'down');
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
      <ul className="status-strip" aria-label="Appliance status">
        <Status name="PostgreSQL" ok={h.postgres.ok} detail={componentDetail(h.postgres)} testId="health-postgres" />
        <Status name="Redis" ok={h.redis.ok} detail={componentDetail(h.redis)} testId="health-redis" />
        <Status name="Transporters" ok={online > 0} detail={`${online} of ${h.transporters.length} online`} testId="health-transporters" />
        <li className="muted small">
          Director {h.version} · <Link to={paths.transporters}>Transporters</Link>
        </li>
      </ul>
      <ProtectionPanel />
      <InventoryPanel />
      <RecentRuns />
    </Page>
  );
}
