import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { RemoteTransporter, TransporterLoad } from '@vaultline/contracts';
import { deployRemote, removeRemote, repinHostKey, restartRemote, saveEndpoints, upgradeRemote, useEndpoints, useRemoteStatus, useRemoteTransporters } from '../../api/remote.ts';
import { ConfirmDialog, useConfirmation } from '../../components/ConfirmDialog.tsx';
import { FormError } from '../../components/FormError.tsx';
import { HostKeyConfirm } from '../../components/HostKeyConfirm.tsx';
import { LoadError, Loading } from '../../components/Page.tsx';
import { ApiRequestError, errorMessage } from '../../lib/api.ts';
import { formatBytes, formatDateTime } from '../../lib/format.ts';
import { useAction } from '../../lib/use-action.ts';
import { AddRemoteForm } from './AddRemoteForm.tsx';
import { TableHead } from '../../components/TableHead.tsx';

type Outcome = { kind: 'ok' | 'error' | 'warn'; text: string };

/** What the host answers over SSH: the process, its version, whether an upgrade would redeploy. */
function Status({ id }: { id: string }) {
  const s = useRemoteStatus(id, true);
  if (s.isPending) return <p className="muted small">Asking the host over SSH…</p>;
  if (s.isError) return <p className="reason">{s.error.message}</p>;
  const p = s.data.process;
  return (
    <p className="small" data-testid="remote-status">
      {s.data.problem ? (
        <span className="reason">{s.data.problem}</span>
      ) : p ? (
        <>
          {p.running ? `running (pid ${p.pid ?? '?'})` : 'not running'} · installed {p.installedVersion ?? 'nothing'}
          {p.supervisor && ` · ${p.supervisor === 'systemd' ? 'systemd unit' : 'supervised process'}`}
        </>
      ) : (
        'not deployed'
      )}
      {' · '}
      {s.data.online ? 'online' : 'offline'}
      {s.data.lastHeartbeat && `, last heartbeat ${formatDateTime(s.data.lastHeartbeat)}`}
      {s.data.upgradeAvailable && <strong> · an upgrade to {s.data.applianceVersion} is available</strong>}
    </p>
  );
}

function RemoteRow({ t, live, onRemove }: { t: RemoteTransporter; live: TransporterLoad | undefined; onRemove: () => void }) {
  const qc = useQueryClient();
  const [busy, setBusy] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [showStatus, setShowStatus] = useState(false);
  const [newKey, setNewKey] = useState<string | null>(null);
  const act = (what: string, fn: () => Promise<Outcome>) => {
    setBusy(what);
    setOutcome(null);
    fn()
      .then(setOutcome)
      .catch((err: unknown) => {
        if (err instanceof ApiRequestError && err.body.code === 'host_key_confirmation_required') setNewKey(String(err.body.hostKeySha256));
        else setOutcome({ kind: 'error', text: errorMessage(err) });
      })
      .finally(() => {
        setBusy(null);
        void qc.invalidateQueries({ queryKey: ['remote-transporters'] });
        void qc.invalidateQueries({ queryKey: ['transporters'] });
      });
  };
  const deployed = Boolean(t.deployedVersion);
  return (
    <>
      <tr data-testid="remote-row">
        <td data-label="Host" className="name-cell">
          <strong>{t.name}</strong>
          <div className="muted small mono">
            {t.username}@{t.host}:{t.port} · {t.auth === 'key' ? 'SSH key' : 'password'}
          </div>
          <div className="muted small mono" title="pinned host key">
            {t.hostKeySha256}
          </div>
        </td>
        <td data-label="Deployed" className="small name-cell">
          {deployed ? (
            <>
              {t.deployedVersion} in <span className="mono">{t.installDir}</span>
              <div className="muted">
                {t.supervisor === 'systemd' ? 'systemd unit' : 'supervised process'} · deployed {formatDateTime(t.deployedAt)}
              </div>
            </>
          ) : (
            <span className="muted">not deployed yet{t.installDir ? ` (will go to ${t.installDir})` : ''}</span>
          )}
        </td>
        <td data-label="State">
          <span className={`pill ${live?.online ? 'ok' : 'bad'}`}>{live?.online ? 'online' : 'offline'}</span>
        </td>
        <td className="actions">
          <div className="action-group">
            <button type="button" aria-expanded={showStatus} onClick={() => setShowStatus((x) => !x)} aria-label={`Status of ${t.name}`}>
              Status
            </button>
            {!deployed && (
              <button
                type="button"
                className="primary"
                disabled={busy !== null}
                aria-label={`${busy === 'deploy' ? 'Deploying to' : 'Deploy to'} ${t.name}`}
                onClick={() => act('deploy', async () => deployOutcome(await deployRemote(t.id)))}
              >
                {busy === 'deploy' ? 'Deploying…' : 'Deploy'}
              </button>
            )}
            {deployed && (
              <>
                <button type="button" disabled={busy !== null} aria-label={`${busy === 'restart' ? 'Restarting' : 'Restart'} ${t.name}`} onClick={() => act('restart', async () => restartOutcome(await restartRemote(t.id)))}>
                  {busy === 'restart' ? 'Restarting…' : 'Restart'}
                </button>
                <button type="button" disabled={busy !== null} aria-label={`${busy === 'upgrade' ? 'Upgrading' : 'Upgrade'} ${t.name}`} onClick={() => act('upgrade', async () => deployOutcome(await upgradeRemote(t.id)))}>
                  {busy === 'upgrade' ? 'Upgrading…' : 'Upgrade'}
                </button>
              </>
            )}
            <button type="button" disabled={busy !== null} aria-label={`Re-pin host key of ${t.name}`} onClick={() => act('host-key', async () => ({ kind: 'ok', text: `${(await repinHostKey(t.id)).name}: host key pinned.` }))}>
              Re-pin host key
            </button>
            <button type="button" className="danger-text" disabled={busy !== null} onClick={onRemove} aria-label={`Remove ${t.name}`}>
              Remove
            </button>
          </div>
        </td>
      </tr>
      {(busy === 'deploy' || busy === 'upgrade') && (
        <tr>
          <td colSpan={4}>
            <p className="muted small" role="status">
              Copying the bundle over SSH (about 80 MiB: its own Node.js and the Transporter), starting it, and waiting for its first heartbeat (up to 60 s)…
            </p>
          </td>
        </tr>
      )}
      {newKey && (
        <tr>
          <td colSpan={4}>
            <HostKeyConfirm fingerprint={newKey}>
              {t.host}:{t.port} now presents this host key (pinned: <span className="mono">{t.hostKeySha256}</span>). Pin it only if the host was reinstalled and you checked it there.
            </HostKeyConfirm>
            <div className="form-actions">
              <button type="button" className="link" onClick={() => setNewKey(null)}>
                Keep the old key
              </button>
              <button
                type="button"
                className="primary"
                onClick={() => {
                  const key = newKey;
                  setNewKey(null);
                  act('host-key', async () => ({ kind: 'ok', text: `${(await repinHostKey(t.id, key)).name}: the new host key is pinned.` }));
                }}
              >
                Trust and pin this host key
              </button>
            </div>
          </td>
        </tr>
      )}
      {outcome && (
        <tr>
          <td colSpan={4}>
            <div className={`alert ${outcome.kind}`} role={outcome.kind === 'ok' ? 'status' : 'alert'} data-testid="remote-outcome">
              <p className="prewrap">{outcome.text}</p>
            </div>
          </td>
        </tr>
      )}
      {showStatus && (
        <tr>
          <td colSpan={4}>
            <Status id={t.id} />
          </td>
        </tr>
      )}
    </>
  );
}

const deployOutcome = (r: { online: boolean; changed: boolean; message: string }): Outcome => ({ kind: r.online || !r.changed ? 'ok' : 'warn', text: r.message });
const restartOutcome = (r: { online: boolean; running: boolean }): Outcome =>
  r.online ? { kind: 'ok', text: 'Restarted; it sent its heartbeat.' } : { kind: 'warn', text: `Restarted (${r.running ? 'running' : 'not running'}), but no heartbeat came: check its Status and the Transporter addresses below.` };

function EndpointsForm() {
  const qc = useQueryClient();
  const ep = useEndpoints(true);
  const [db, setDb] = useState<string | null>(null);
  const [redis, setRedis] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const [saved, setSaved] = useState(false);
  if (ep.isPending) return <Loading what="the Transporter addresses" />;
  if (ep.isError) return <LoadError what="the Transporter addresses" error={ep.error} />;
  const dbValue = db ?? ep.data.databaseAddress ?? '';
  const redisValue = redis ?? ep.data.redisAddress ?? '';
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    return run(async () => {
      await saveEndpoints({ databaseAddress: dbValue.trim() || null, redisAddress: redisValue.trim() || null });
      await qc.invalidateQueries({ queryKey: ['transporter-endpoints'] });
      setDb(null);
      setRedis(null);
      setSaved(true);
    });
  };
  return (
    <form className="form" onSubmit={(e) => void submit(e)} aria-labelledby="endpoints-title">
      <h4 id="endpoints-title">Addresses remote Transporters use</h4>
      <p className="muted small">
        Where a remote Transporter reaches PostgreSQL and Redis, when the Director’s own addresses (often 127.0.0.1) do not work from there. Credentials and the database name stay the Director’s.
        Applies at the next deploy or upgrade.
      </p>
      <div className="form-row">
        <label>
          PostgreSQL address
          <input name="databaseAddress" className="mono" value={dbValue} onChange={(e) => setDb(e.target.value)} placeholder="10.0.0.5:5432" />
          <span className="muted small mono">{ep.data.databaseUrl}</span>
        </label>
        <label>
          Redis address
          <input name="redisAddress" className="mono" value={redisValue} onChange={(e) => setRedis(e.target.value)} placeholder="10.0.0.5" />
          <span className="muted small mono">{ep.data.redisUrl}</span>
        </label>
      </div>
      <FormError message={error} />
      {saved && (
        <div className="alert ok" role="status">
          Saved.
        </div>
      )}
      <div className="form-actions">
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Save addresses'}
        </button>
      </div>
    </form>
  );
}

/** Admin only: remote hosts, their deployment and state, and the addresses they are given. */
export function RemoteTransporters({ live }: { live: TransporterLoad[] }) {
  const qc = useQueryClient();
  const remotes = useRemoteTransporters(true);
  const [adding, setAdding] = useState(false);
  const [flash, setFlash] = useState<Outcome | null>(null);
  const [force, setForce] = useState(false);
  const removal = useConfirmation(
    (t: RemoteTransporter, password) => removeRemote(t.id, force, password),
    async (r) => {
      setFlash({ kind: r.cleaned ? 'ok' : 'warn', text: r.message });
      await qc.invalidateQueries({ queryKey: ['remote-transporters'] });
    },
    { reauth: true },
  );
  return (
    <section className="card" aria-labelledby="remote-title" data-testid="remote-transporters">
      <div className="row">
        <h3 id="remote-title">Remote Transporters</h3>
        {!adding && (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            Add remote host
          </button>
        )}
      </div>
      {flash && (
        <div className={`alert ${flash.kind}`} role={flash.kind === 'ok' ? 'status' : 'alert'}>
          <p className="prewrap">{flash.text}</p>
        </div>
      )}
      {adding && (
        <AddRemoteForm
          onCancel={() => setAdding(false)}
          onAdded={(t, c) => {
            setAdding(false);
            setFlash({
              kind: 'ok',
              text: `${t.name} added: ${c.os} ${c.machine}, glibc ${c.glibc ?? 'unknown'}, signed in as ${c.user}${c.root ? ' (root' + (c.systemd ? ', systemd)' : ')') : ''}; installs into ${c.installDir} (${formatBytes(c.freeBytes)} free, needs ${formatBytes(c.neededBytes)}). Deploy it when ready.`,
            });
          }}
        />
      )}
      {remotes.isPending && <Loading what="remote Transporters" />}
      {remotes.isError && <LoadError what="remote Transporters" error={remotes.error} />}
      {remotes.data?.length === 0 && !adding && <p className="muted">None yet. The Director deploys and manages a Transporter on another Linux host over SSH.</p>}
      {remotes.data && remotes.data.length > 0 && (
        <table className="cards" data-testid="remotes">
          <TableHead columns={['Host', 'Deployed', 'State']} actions="Actions" />
          <tbody>
            {remotes.data.map((t) => (
              <RemoteRow
                key={t.id}
                t={t}
                live={live.find((l) => l.id === t.id)}
                onRemove={() => {
                  setForce(false);
                  removal.ask(t);
                }}
              />
            ))}
          </tbody>
        </table>
      )}
      <EndpointsForm />
      <ConfirmDialog {...removal.dialog} title={`Remove ${removal.subject?.name ?? 'the remote Transporter'}?`} confirmLabel={force ? 'Remove anyway' : 'Remove'} danger>
        <p>The Director stops it over SSH, deletes its install folder and env file, then forgets it. It is refused while it runs VM jobs.</p>
        <label className="check-field">
          <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
          <span>
            Force: the host is gone
            <span className="muted small block">
              Removes it from the Director even when the host cannot be reached or cleaned, or while it runs jobs (they are cancelled). If that host comes back it may still have the Transporter
              running, its install folder, and the env file holding its own database and Redis logins (revoked by the Director) and its private key: delete them there.
            </span>
          </span>
        </label>
      </ConfirmDialog>
    </section>
  );
}
