import { useMemo, useRef } from 'react';
import { useQuery } from '@tanstack/react-query';
import uPlot from 'uplot';
import { AXIS, useUPlot } from '../../components/chart/useUPlot.ts';
import type { TransporterLoad, TransporterLoadHistory } from '@vaultline/contracts';
import { useTransporters } from '../../api/health.ts';
import { api } from '../../lib/api.ts';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { transportLabel } from '../../components/run/transport.ts';
import { ago, formatBytes, formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { RemoteTransporters } from './RemoteTransporters.tsx';
import { TableHead } from '../../components/TableHead.tsx';

export default function TransportersPage() {
  const transporters = useTransporters();
  const admin = can(useMe().role, 'admin');
  return (
    <Page title="Transporters" subtitle="The workers that snapshot, read and store VM disks. One is offline after three missed heartbeats.">
      {transporters.isPending && <Loading what="Transporters" />}
      {transporters.isError && <LoadError what="Transporters" error={transporters.error} />}
      {transporters.data?.length === 0 && (
        <section className="card">
          <p className="muted">No Transporter has registered yet. The local one starts with the appliance.</p>
        </section>
      )}
      {transporters.data && transporters.data.length > 0 && (
        <section className="card">
          <table className="cards" data-testid="transporters">
            <TableHead columns={['Transporter', 'State', 'Last heartbeat', 'Version', 'Transports', 'Running now']} />
            <tbody>
              {transporters.data.map((t) => (
                <tr key={t.id} data-testid="transporter-row">
                  <td data-label="Transporter">
                    <strong>{t.name}</strong>
                    <div className="muted small">
                      {t.host} · {t.id}
                    </div>
                    {t.serves && (
                      <div className="small" data-testid="transporter-serves">
                        Serves {t.serves.repositories.join(', ')} to other Transporters on <span className="mono">{t.serves.address}</span>
                      </div>
                    )}
                  </td>
                  <td data-label="State">
                    <span className={`pill ${t.online ? 'ok' : 'bad'}`}>{t.online ? 'online' : 'offline'}</span>
                  </td>
                  <td data-label="Last heartbeat">
                    <time dateTime={t.lastHeartbeat} title={formatDateTime(t.lastHeartbeat)}>
                      {ago(t.lastHeartbeat)}
                    </time>
                    <div className="muted small">up since {formatDateTime(t.startedAt)}</div>
                  </td>
                  <td data-label="Version">{t.version}</td>
                  <td data-label="Transports" className="small">{t.capabilities.transports.map(transportLabel).join(', ') || '—'}</td>
                  <td data-label="Running now" data-testid="transporter-load">
                    {t.runningVms} VM{t.runningVms === 1 ? '' : 's'} · {t.runningDisks} of {t.capabilities.maxDiskTasks} disk tasks
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {transporters.data && transporters.data.length > 0 && (
        <section className="card" aria-labelledby="load-title">
          <h3 id="load-title">Load, last {LOAD_HOURS} hours</h3>
          {transporters.data.map((t) => (
            <LoadChart key={t.id} transporter={t} />
          ))}
        </section>
      )}
      {admin && <RemoteTransporters live={transporters.data ?? []} />}
    </Page>
  );
}

const LOAD_HOURS = 24;

const useTransporterLoad = (id: string) =>
  useQuery({ queryKey: ['transporters', id, 'load', LOAD_HOURS], queryFn: () => api<TransporterLoadHistory>(`/api/transporters/${encodeURIComponent(id)}/load?hours=${LOAD_HOURS}`), refetchInterval: 60_000 });

/** One Transporter's disk tasks and process CPU over time (uPlot, as the run page's throughput chart), from the samples its heartbeat stored. */
function LoadChart({ transporter: t }: { transporter: TransporterLoad }) {
  const load = useTransporterLoad(t.id);
  const h = load.data;
  const data = useMemo(() => (h && h.at.length > 0 ? ([h.at.map((x) => x / 1000), h.activeDisks, h.cpuPercent] as uPlot.AlignedData) : null), [h]);
  const box = useRef<HTMLDivElement>(null);
  useUPlot(box, data, (width) => ({
    width,
    height: 120,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, disks: { range: (_u, _min, max) => [0, Math.max(t.capabilities.maxDiskTasks, max)] }, cpu: { range: (_u, _min, max) => [0, Math.max(100, max * 1.1)] } },
    axes: [AXIS, { ...AXIS, scale: 'disks', size: 40 }, { ...AXIS, scale: 'cpu', side: 1, size: 60, grid: { show: false }, values: (_u, v: (number | null)[]) => v.map((x) => (x === null ? '' : `${x.toFixed(0)} %`)) }],
    series: [
      {},
      { label: 'Disk tasks', scale: 'disks', stroke: '#58a6ff', width: 1.5, paths: uPlot.paths.stepped!({ align: 1 }), points: { show: false } },
      { label: 'CPU', scale: 'cpu', stroke: '#e3b341', width: 1.5, points: { show: false }, value: (_u: uPlot, v: number | null) => (v === null ? '—' : `${v.toFixed(0)} %`) },
    ],
  }));

  const n = h?.at.length ?? 0;
  return (
    <figure className="load-figure" data-testid="transporter-load-chart" data-samples={n} aria-labelledby={`load-${t.id}`}>
      <figcaption id={`load-${t.id}`}>
        <strong>{t.name}</strong>{' '}
        {h && n > 0 && (
          <span className="muted small">
            {n} sample{n === 1 ? '' : 's'}; busiest {Math.max(...h.activeDisks)} of {t.capabilities.maxDiskTasks} disk tasks, CPU up to {Math.max(...h.cpuPercent).toFixed(0)} %, memory {formatBytes(h.rssBytes.at(-1)!)} now
          </span>
        )}
      </figcaption>
      {load.isError && <LoadError what={`the load of ${t.name}`} error={load.error} />}
      {h && n === 0 && <p className="muted small">No load recorded yet: the Transporter records it once a minute.</p>}
      {data && <div ref={box} className="chart" role="img" aria-label={`Disk tasks and CPU of ${t.name} over the last ${LOAD_HOURS} hours`} />}
    </figure>
  );
}
