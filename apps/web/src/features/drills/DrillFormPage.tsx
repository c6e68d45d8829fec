import { useMemo, useState, type FormEvent } from 'react';
import { useNavigate, useParams } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import type { DrillJobDto, DrillUpdate, RepositoryRestorePoint, VCenter } from '@vaultline/contracts';
import { createDrill, updateDrill, useDrill } from '../../api/drills.ts';
import { previewSchedule } from '../../api/jobs.ts';
import { useAllRestorePoints, usePlacement } from '../../api/restores.ts';
import { useVCenters } from '../../api/vcenters.ts';
import { FormError } from '../../components/FormError.tsx';
import { LoadError, Loading, NotAllowed, Page } from '../../components/Page.tsx';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { formatBytes, formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { fromCron, toCron, type ScheduleChoice } from '../jobs/schedule.ts';
import { ScheduleChooser } from '../jobs/wizard/ScheduleStep.tsx';

interface BackedUpVm {
  instanceUuid: string;
  name: string;
  points: number;
  newest: string;
}

/** The VMs that have restore points (by instance UUID, under their latest name). */
function backedUpVms(points: RepositoryRestorePoint[]): BackedUpVm[] {
  const m = new Map<string, BackedUpVm>();
  for (const p of points) {
    const vm = m.get(p.vmInstanceUuid);
    if (vm) vm.points++;
    else m.set(p.vmInstanceUuid, { instanceUuid: p.vmInstanceUuid, name: p.vmName, points: 1, newest: p.createdAt });
  }
  return [...m.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function DrillForm({ drill, vcenters, vms }: { drill: DrillJobDto | null; vcenters: VCenter[]; vms: BackedUpVm[] }) {
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [name, setName] = useState(drill?.name ?? '');
  const [vcenterId, setVcenterId] = useState(drill?.vcenterId ?? vcenters[0]?.id ?? '');
  const [chosen, setChosen] = useState<{ instanceUuid: string; name: string }[]>(drill?.vms ?? []);
  const [pointChoice, setPointChoice] = useState(drill?.pointChoice ?? 'newest');
  const [datastore, setDatastore] = useState(drill?.datastore ?? '');
  const [schedule, setSchedule] = useState<ScheduleChoice>(() => (drill ? fromCron(drill.schedule) : { kind: 'weekly', days: [0], time: '03:00' }));
  const [enabled, setEnabled] = useState(drill?.enabled ?? true);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const placement = usePlacement(vcenterId || undefined);
  const missing = chosen.filter((c) => !vms.some((v) => v.instanceUuid === c.instanceUuid));
  const isChosen = (uuid: string) => chosen.some((c) => c.instanceUuid === uuid);
  const toggle = (vm: BackedUpVm) => setChosen((c) => (isChosen(vm.instanceUuid) ? c.filter((x) => x.instanceUuid !== vm.instanceUuid) : [...c, { instanceUuid: vm.instanceUuid, name: vm.name }]));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!name.trim()) return setError('Give the drill a name.');
    if (chosen.length === 0) return setError('Choose at least one VM.');
    const cron = toCron(schedule);
    if (cron === '') return setError('Enter a cron expression, or choose another schedule.');
    setBusy(true);
    try {
      if (cron) await previewSchedule(cron);
      const common = { vms: chosen, pointChoice, datastore: datastore || null, schedule: cron, enabled };
      let saved: DrillJobDto;
      if (drill) {
        const diff: DrillUpdate = {};
        if (JSON.stringify(chosen) !== JSON.stringify(drill.vms)) diff.vms = chosen;
        if (pointChoice !== drill.pointChoice) diff.pointChoice = pointChoice;
        if ((datastore || null) !== drill.datastore) diff.datastore = datastore || null;
        if (cron !== drill.schedule) diff.schedule = cron;
        if (enabled !== drill.enabled) diff.enabled = enabled;
        saved = Object.keys(diff).length ? await updateDrill(drill.id, diff) : drill;
      } else {
        saved = await createDrill({ name: name.trim(), vcenterId, ...common });
      }
      await qc.invalidateQueries({ queryKey: ['drills'] });
      void navigate(paths.drills, { state: { flash: `Drill ${saved.name} ${drill ? 'saved' : 'created'}.` } });
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card form wide" onSubmit={(e) => void submit(e)} aria-label={drill ? `Edit drill ${drill.name}` : 'New drill'}>
      <div className="form-row">
        <label>
          Name
          <input name="drillName" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} disabled={Boolean(drill)} />
        </label>
        <label>
          vCenter the throwaway VMs are created in
          <select value={vcenterId} onChange={(e) => setVcenterId(e.target.value)} disabled={Boolean(drill)}>
            {vcenters.map((v) => (
              <option key={v.id} value={v.id}>
                {v.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <fieldset>
        <legend>VMs to drill</legend>
        {vms.length === 0 ? (
          <p className="muted">No VM has a restore point yet: back one up first.</p>
        ) : (
          <table className="pick compact cards" aria-label="VMs to drill">
            <thead>
              <tr>
                <th scope="col" className="check">
                  <span className="sr-only">Drill it</span>
                </th>
                <th scope="col">VM</th>
                <th scope="col">Restore points</th>
                <th scope="col">Newest</th>
              </tr>
            </thead>
            <tbody>
              {vms.map((vm) => (
                <tr key={vm.instanceUuid} className={isChosen(vm.instanceUuid) ? 'selected' : undefined} onClick={(e) => (e.target as HTMLElement).closest('input') === null && toggle(vm)}>
                  <td className="check">
                    <input type="checkbox" aria-label={`Drill ${vm.name}`} checked={isChosen(vm.instanceUuid)} onChange={() => toggle(vm)} />
                  </td>
                  <td data-label="VM" className="name-cell">
                    <strong>{vm.name}</strong>
                  </td>
                  <td data-label="Restore points">{vm.points}</td>
                  <td data-label="Newest">{formatDateTime(vm.newest)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {missing.length > 0 && <p className="small muted">Also in this drill, without a restore point now (their drill fails, saying so): {missing.map((m) => m.name).join(', ')}.</p>}
      </fieldset>
      <fieldset className="choices">
        <legend>Which restore point</legend>
        <label className={`choice ${pointChoice === 'newest' ? 'chosen' : ''}`}>
          <input type="radio" name="pointChoice" checked={pointChoice === 'newest'} onChange={() => setPointChoice('newest')} />
          <span className="choice-text">
            <strong>The newest</strong> <span className="muted small block">Proves the latest backup restores.</span>
          </span>
        </label>
        <label className={`choice ${pointChoice === 'random' ? 'chosen' : ''}`}>
          <input type="radio" name="pointChoice" checked={pointChoice === 'random'} onChange={() => setPointChoice('random')} />
          <span className="choice-text">
            <strong>A random one</strong> <span className="muted small block">Over time every kept restore point is tried, which catches damage in older ones too.</span>
          </span>
        </label>
      </fieldset>
      <label>
        Datastore for the throwaway VMs
        <select value={datastore} onChange={(e) => setDatastore(e.target.value)}>
          <option value="">The source disks’ datastore</option>
          {placement.data?.datastores.map((d) => (
            <option key={d.moref} value={d.name}>
              {d.name} · {formatBytes(d.freeBytes)} free
            </option>
          ))}
          {datastore && !placement.data?.datastores.some((d) => d.name === datastore) && <option value={datastore}>{datastore}</option>}
        </select>
        {placement.isError && <span className="reason">{placement.error.message}</span>}
      </label>
      <ScheduleChooser value={schedule} onChange={setSchedule} noneHelp="Run it by hand from the drill list." whenNone="The drill runs only when started by hand (Run now)." />
      <label className="check-field">
        <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
        <span>
          Enabled <span className="muted small block">A disabled drill keeps its settings but its schedule does not start it.</span>
        </span>
      </label>
      <FormError message={error} />
      <div className="form-actions">
        <button type="button" className="link" onClick={() => void navigate(paths.drills)}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Saving…' : drill ? 'Save changes' : 'Create drill'}
        </button>
      </div>
    </form>
  );
}

export default function DrillFormPage() {
  const { id } = useParams();
  const me = useMe();
  const drill = useDrill(id);
  const vcenters = useVCenters();
  const points = useAllRestorePoints();
  const vms = useMemo(() => backedUpVms(points.data ?? []), [points.data]);
  const title = id ? `Edit drill ${drill.data?.name ?? ''}` : 'New drill';
  if (!can(me.role, 'operator')) {
    return (
      <Page title={title}>
        <NotAllowed role="operator" />
      </Page>
    );
  }
  const failed = (id ? drill.error : null) ?? vcenters.error ?? points.error;
  return (
    <Page title={title} subtitle="Which VMs, which restore point, where, and when.">
      {failed ? (
        <LoadError what="what the drill needs" error={failed} />
      ) : (id && !drill.data) || !vcenters.data || !points.data ? (
        <Loading what="the VMs with restore points" />
      ) : vcenters.data.length === 0 ? (
        <p className="muted">Register a vCenter first: drills restore into one.</p>
      ) : (
        <DrillForm drill={drill.data ?? null} vcenters={vcenters.data} vms={vms} />
      )}
    </Page>
  );
}
