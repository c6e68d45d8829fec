import { useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { NotificationTargetDto } from '@vaultline/contracts';
import { deleteTarget, sendTest, updateTarget, useDeliveries, useNotificationTargets } from '../../api/notifications.ts';
import { ConfirmDialog, useConfirmation } from '../../components/ConfirmDialog.tsx';
import { LoadError, Loading, NotAllowed, Page } from '../../components/Page.tsx';
import { errorMessage } from '../../lib/api.ts';
import { ago, formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { AddTargetForm } from './AddTargetForm.tsx';
import { EVENTS, type Events } from './events.ts';
import { TableHead } from '../../components/TableHead.tsx';

function Deliveries({ target }: { target: NotificationTargetDto }) {
  const list = useDeliveries(target.id, true);
  if (list.isPending) return <Loading what="deliveries" />;
  if (list.isError) return <LoadError what="deliveries" error={list.error} />;
  if (list.data.length === 0) return <p className="muted small">Nothing sent to {target.name} yet (test messages are not recorded here).</p>;
  return (
    <table className="compact cards" data-testid="deliveries" aria-label={`Recent deliveries to ${target.name}`}>
      <TableHead columns={['When', 'What', 'Status', 'Attempts', 'Last error']} />
      <tbody>
        {list.data.map((d) => (
          <tr key={d.id}>
            <td data-label="When">{formatDateTime(d.sentAt ?? d.createdAt)}</td>
            <td data-label="What">{d.kind}</td>
            <td data-label="Status">
              <span className={`pill ${d.status === 'sent' ? 'ok' : d.status === 'failed' ? 'bad' : ''}`}>{d.status}</span>
            </td>
            <td data-label="Attempts">{d.attempts}</td>
            <td data-label="Last error" className="reason">
              {d.lastError ?? ''}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type Outcome = { kind: 'ok' | 'error'; text: string };

function TargetRow({ t, admin, onDelete }: { t: NotificationTargetDto; admin: boolean; onDelete: () => void }) {
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const act = (fn: () => Promise<Outcome | null>) => {
    setBusy(true);
    setOutcome(null);
    fn()
      .then(async (o) => {
        setOutcome(o);
        await qc.invalidateQueries({ queryKey: ['notifications'] });
      })
      .catch((err: unknown) => setOutcome({ kind: 'error', text: errorMessage(err) }))
      .finally(() => setBusy(false));
  };
  return (
    <>
      <tr data-testid="target-row">
        <td data-label="Target" className="name-cell">
          <strong>{t.name}</strong> <span className="pill">{t.kind === 'webhook' ? 'webhook' : 'e-mail'}</span>
          <div className="muted small mono">{t.kind === 'webhook' ? t.url : `${t.email?.to.join(', ')} via ${t.email?.host}:${t.email?.port} (${t.email?.security})`}</div>
          {t.kind === 'webhook' && <div className="muted small">{t.hasSecret ? 'signed (X-Vaultline-Signature)' : 'not signed'}</div>}
        </td>
        <td data-label="Events">
          {admin ? (
            <select aria-label={`Events for ${t.name}`} value={t.events} disabled={busy} onChange={(e) => act(async () => (await updateTarget(t.id, { events: e.target.value as Events }), null))}>
              {EVENTS.map((x) => (
                <option key={x.value} value={x.value}>
                  {x.label}
                </option>
              ))}
            </select>
          ) : (
            EVENTS.find((x) => x.value === t.events)?.label
          )}
        </td>
        <td data-label="Enabled">
          {admin ? (
            <button
              type="button"
              role="switch"
              className={`switch ${t.enabled ? 'on' : ''}`}
              aria-checked={t.enabled}
              aria-label={`${t.name} enabled`}
              disabled={busy}
              onClick={() => act(async () => (await updateTarget(t.id, { enabled: !t.enabled }), null))}
            >
              <span aria-hidden="true" />
            </button>
          ) : (
            <span>{t.enabled ? 'yes' : 'no'}</span>
          )}
        </td>
        <td data-label="Added" className="small muted">
          {ago(t.createdAt)}
        </td>
        <td className="actions">
          <button type="button" aria-expanded={open} onClick={() => setOpen((o) => !o)} aria-label={`Deliveries to ${t.name}`}>
            Deliveries
          </button>
          {admin && (
            <>
              <button
                type="button"
                disabled={busy}
                aria-label={`${busy ? 'Sending a test to' : 'Send test to'} ${t.name}`}
                onClick={() => act(async () => (await sendTest(t.id), { kind: 'ok', text: `Test message delivered to ${t.name}.` }))}
              >
                {busy ? 'Sending…' : 'Send test'}
              </button>
              <button type="button" className="danger-text" onClick={onDelete} aria-label={`Delete ${t.name}`}>
                Delete
              </button>
            </>
          )}
        </td>
      </tr>
      {outcome && (
        <tr>
          <td colSpan={5}>
            <div className={`alert ${outcome.kind}`} role={outcome.kind === 'error' ? 'alert' : 'status'} data-testid="test-outcome">
              {outcome.kind === 'error' ? `Sending to ${t.name} failed: ${outcome.text}` : outcome.text}
            </div>
          </td>
        </tr>
      )}
      {open && (
        <tr>
          <td colSpan={5}>
            <Deliveries target={t} />
          </td>
        </tr>
      )}
    </>
  );
}

export default function NotificationsPage() {
  const me = useMe();
  const qc = useQueryClient();
  const operator = can(me.role, 'operator');
  const admin = can(me.role, 'admin');
  const targets = useNotificationTargets(operator);
  const [adding, setAdding] = useState(false);
  const [flash, setFlash] = useState<string | null>(null);
  const removal = useConfirmation(
    (t: NotificationTargetDto) => deleteTarget(t.id),
    async (_, t) => {
      setFlash(`Target ${t.name} deleted.`);
      await qc.invalidateQueries({ queryKey: ['notifications'] });
    },
  );
  if (!operator) {
    return (
      <Page title="Notifications">
        <NotAllowed role="operator" />
      </Page>
    );
  }
  return (
    <Page
      title="Notifications"
      subtitle="Where failed runs (and, by choice, warnings or every run) and cleanup problems are reported. Each message is sent once per target, retried with backoff while it is down."
      actions={
        admin &&
        !adding && (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            Add target
          </button>
        )
      }
    >
      {flash && (
        <div className="alert ok" role="status">
          {flash}
        </div>
      )}
      {adding && (
        <AddTargetForm
          onCancel={() => setAdding(false)}
          onAdded={(t) => {
            setAdding(false);
            setFlash(`Target ${t.name} added. Send it a test message to check it.`);
          }}
        />
      )}
      {targets.isPending && <Loading what="notification targets" />}
      {targets.isError && <LoadError what="notification targets" error={targets.error} />}
      {targets.data?.length === 0 && (
        <section className="card">
          <p className="muted">No notification target yet{admin ? '.' : '; an admin can add one.'}</p>
        </section>
      )}
      {targets.data && targets.data.length > 0 && (
        <section className="card">
          <table className="cards" data-testid="targets">
            <TableHead columns={['Target', 'Events', 'Enabled', 'Added']} actions="Actions" />
            <tbody>
              {targets.data.map((t) => (
                <TargetRow
                  key={t.id}
                  t={t}
                  admin={admin}
                  onDelete={() => removal.ask(t)}
                />
              ))}
            </tbody>
          </table>
        </section>
      )}
      <ConfirmDialog {...removal.dialog} title={`Delete target ${removal.subject?.name ?? ''}?`} confirmLabel="Delete target" danger>
        <p>Nothing more is sent to it; its stored secret or password is deleted with it.</p>
      </ConfirmDialog>
    </Page>
  );
}
