import { useTransporters } from '../../api/health.ts';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { transportLabel } from '../../components/run/transport.ts';
import { ago, formatDateTime } from '../../lib/format.ts';
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
      {admin && <RemoteTransporters live={transporters.data ?? []} />}
    </Page>
  );
}
