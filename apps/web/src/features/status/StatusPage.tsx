import { useEffect } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { ComponentHealth, HealthResponse, Me, TransporterStatus } from '@vaultline/contracts';
import { InventoryPanel } from '../inventory/InventoryPanel.tsx';
import { RunsPanel } from '../runs/RunsPanel.tsx';
import { api } from '../../lib/api.ts';
import { getSocket } from '../../lib/socket.ts';

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return new Date(iso).toLocaleString();
}

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
      {health.ok ? (
        <p className="muted small">answered in {health.latencyMs ?? '?'} ms</p>
      ) : (
        <p className="reason">{health.reason}</p>
      )}
    </section>
  );
}

function TransporterRow({ t }: { t: TransporterStatus }) {
  return (
    <tr data-testid="transporter-row">
      <td>
        <strong>{t.name}</strong>
        <div className="muted small">{t.id}</div>
      </td>
      <td>{t.host}</td>
      <td>{t.version}</td>
      <td>{t.capabilities.transports.join(', ') || '—'}</td>
      <td>{t.capabilities.maxDiskTasks}</td>
      <td title={t.lastHeartbeat}>{ago(t.lastHeartbeat)}</td>
      <td>
        <span className={`pill ${t.online ? 'ok' : 'bad'}`}>{t.online ? 'online' : 'offline'}</span>
      </td>
    </tr>
  );
}

export function StatusPage({ me }: { me: Me }) {
  const qc = useQueryClient();
  const health = useQuery({ queryKey: ['health'], queryFn: () => api<HealthResponse>('/api/health'), refetchInterval: 10_000 });

  useEffect(() => {
    const socket = getSocket();
    const onHealth = (h: HealthResponse) => qc.setQueryData(['health'], h);
    socket.on('health', onHealth);
    return () => {
      socket.off('health', onHealth);
    };
  }, [qc]);

  if (health.isPending) return <p className="muted">Checking…</p>;
  if (health.isError) return <div className="alert error">Cannot read health: {health.error.message}</div>;
  const h = health.data;
  const online = h.transporters.filter((t) => t.online).length;

  return (
    <div className="page">
      <div className="page-head">
        <h2>Overview</h2>
        <span className={`pill big ${h.ok ? 'ok' : 'bad'}`} data-testid="overall">
          {h.ok ? 'All systems go' : 'Needs attention'}
        </span>
      </div>
      <div className="grid">
        <ComponentCard name="PostgreSQL" detail="Jobs, runs, restore points, users" health={h.postgres} />
        <ComponentCard name="Redis" detail="Work queue to the Transporters" health={h.redis} />
        <section className="card component" data-testid="health-transporters">
          <div className="row">
            <h3>Transporters</h3>
            <Light ok={online > 0} label="Transporters" />
          </div>
          <p className="muted">
            {online} of {h.transporters.length} online
          </p>
          <p className="muted small">Director {h.version}</p>
        </section>
      </div>
      <InventoryPanel me={me} />
      <RunsPanel />
      <section className="card">
        <h3>Transporters</h3>
        {h.transporters.length === 0 ? (
          <p className="muted">No Transporter has registered yet. The local one starts with the appliance.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Host</th>
                <th>Version</th>
                <th>Transports</th>
                <th>Disk tasks</th>
                <th>Last heartbeat</th>
                <th>State</th>
              </tr>
            </thead>
            <tbody>
              {h.transporters.map((t) => (
                <TransporterRow key={t.id} t={t} />
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
