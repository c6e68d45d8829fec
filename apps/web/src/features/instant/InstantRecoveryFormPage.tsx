import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import type { RestorePointDetail, VCenter } from '@vaultline/contracts';
import { startInstantRecovery } from '../../api/instant-recoveries.ts';
import { usePlacement, useRestorePoint } from '../../api/restores.ts';
import { HostOptions } from '../restores/PlacementFields.tsx';
import { useVCenters } from '../../api/vcenters.ts';
import { FormError } from '../../components/FormError.tsx';
import { LoadError, Loading, NotAllowed, Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';

const DEFAULT = 'The host’s default';

/** Where and how a restore point is run: vCenter, ESXi host, the VM's name, power and network. */
function InstantRecoveryForm({ point, vcenters }: { point: RestorePointDetail; vcenters: VCenter[] }) {
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [vcenterId, setVcenterId] = useState(point.vcenterId && vcenters.some((v) => v.id === point.vcenterId) ? point.vcenterId : (vcenters[0]?.id ?? ''));
  const [host, setHost] = useState('');
  const [folder, setFolder] = useState('');
  const [resourcePool, setResourcePool] = useState('');
  const [name, setName] = useState(`${point.sourceVm.name}-recovered`.slice(0, 80));
  const [powerOn, setPowerOn] = useState(true);
  const [connectNics, setConnectNics] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const placement = usePlacement(vcenterId || undefined);
  const hostName = placement.data?.hosts.find((h) => h.moref === host)?.name;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!host) return setError('Choose the ESXi host the VM runs on.');
    if (!name.trim()) return setError('Give the recovered VM a name.');
    setBusy(true);
    try {
      const started = await startInstantRecovery({ restorePointId: point.id, vcenterId, host, name: name.trim(), powerOn, connectNics, folder: folder || null, resourcePool: resourcePool || null });
      await qc.invalidateQueries({ queryKey: ['instant-recoveries'] });
      void navigate(paths.instantRecoveries, { state: { flash: `Recovering ${started.name} on ${hostName ?? 'the host'}: it runs in seconds; follow it below.` } });
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card form wide" onSubmit={(e) => void submit(e)} aria-label="Instant recovery">
      <p className="muted small">
        {point.sourceVm.name} as it was at {formatDateTime(point.createdAt)}. A Transporter serves the restore point to the host as an NFS datastore and the VM is
        registered and started from it: nothing is copied first. The guest’s writes go to files beside it, never into the backup. When it runs, move it to
        production storage while it keeps running (Migrate), or throw it away (Discard).
      </p>
      <div className="form-row">
        <label>
          vCenter
          <select aria-label="vCenter" value={vcenterId} onChange={(e) => (setVcenterId(e.target.value), setHost(''), setFolder(''), setResourcePool(''))}>
            {vcenters.map((v) => (
              <option key={v.id} value={v.id}>
                {v.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          ESXi host
          <select aria-label="ESXi host" value={host} onChange={(e) => setHost(e.target.value)}>
            <option value="">{placement.isPending ? 'Loading hosts…' : 'Choose a host'}</option>
            {placement.data && <HostOptions hosts={placement.data.hosts} />}
          </select>
          {placement.isError && <span className="reason">{placement.error.message}</span>}
        </label>
        <label>
          VM name
          <input name="vmName" value={name} onChange={(e) => setName(e.target.value)} required maxLength={80} />
        </label>
      </div>
      <div className="form-row">
        <label>
          VM folder
          <select aria-label="VM folder" value={folder} onChange={(e) => setFolder(e.target.value)}>
            <option value="">{DEFAULT}</option>
            {placement.data?.folders.map((f) => (
              <option key={f.moref} value={f.moref}>
                {f.datacenter}/{f.path}
              </option>
            ))}
          </select>
        </label>
        <label>
          Resource pool
          <select aria-label="Resource pool" value={resourcePool} onChange={(e) => setResourcePool(e.target.value)}>
            <option value="">{DEFAULT}</option>
            {placement.data?.resourcePools
              .filter((p) => !host || p.hosts.includes(host))
              .map((p) => (
                <option key={p.moref} value={p.moref}>
                  {p.name} · {p.datacenter}
                </option>
              ))}
          </select>
        </label>
      </div>
      <label className="check-field">
        <input type="checkbox" checked={powerOn} onChange={(e) => setPowerOn(e.target.checked)} />
        <span>
          Power it on <span className="muted small block">Otherwise it is registered powered off, to be started from vSphere.</span>
        </span>
      </label>
      <label className="check-field">
        <input type="checkbox" checked={connectNics} onChange={(e) => setConnectNics(e.target.checked)} />
        <span>
          Connect its network adapters{' '}
          <span className="muted small block">Off by default: a copy on the production network may clash with the VM it replaces (same addresses, same name).</span>
        </span>
      </label>
      <FormError message={error} />
      <div className="form-actions">
        <Link className="button link" to={paths.restorePoint(point.id)}>
          Back to the restore point
        </Link>
        <button type="submit" className="primary" disabled={busy || !vcenterId}>
          {busy ? 'Starting…' : 'Recover now'}
        </button>
      </div>
    </form>
  );
}

export default function InstantRecoveryFormPage() {
  const me = useMe();
  const [params] = useSearchParams();
  const pointId = params.get('point') ?? undefined;
  const point = useRestorePoint(pointId);
  const vcenters = useVCenters();
  const title = point.data ? `Instant recovery of ${point.data.sourceVm.name}` : 'Instant recovery';
  if (!can(me.role, 'operator')) {
    return (
      <Page title={title}>
        <NotAllowed role="operator" />
      </Page>
    );
  }
  return (
    <Page title={title} subtitle="Run a backed-up VM on an ESXi host straight from its restore point.">
      {!pointId && (
        <p>
          Choose a restore point first: <Link to={paths.restore}>Restore</Link>.
        </p>
      )}
      {pointId && (point.isPending || vcenters.isPending) && <Loading what="the restore point" />}
      {point.isError && <LoadError what="the restore point" error={point.error} />}
      {vcenters.isError && <LoadError what="vCenters" error={vcenters.error} />}
      {point.data && point.data.hardware === null && <p className="alert error">This restore point holds no hardware description (taken before Vaultline recorded it): the VM cannot be registered from it.</p>}
      {point.data && point.data.hardware !== null && vcenters.data && vcenters.data.length === 0 && <p className="muted">Add a vCenter first.</p>}
      {point.data && point.data.hardware !== null && vcenters.data && vcenters.data.length > 0 && <InstantRecoveryForm point={point.data} vcenters={vcenters.data} />}
    </Page>
  );
}
