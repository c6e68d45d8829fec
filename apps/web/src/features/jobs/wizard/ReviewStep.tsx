import { isContainerSource, type RepositoryDto, type VCenter } from '@vaultline/contracts';
import { TRANSPORT_LABEL } from '../../../components/run/transport.ts';
import { describeSchedule, toCron } from '../schedule.ts';
import type { WizardState } from './state.ts';
import { DisksLeftOut } from './SourcesStep.tsx';

export function ReviewStep({ state, set, vcenters, repositories }: { state: WizardState; set: (patch: Partial<WizardState>) => void; vcenters: VCenter[]; repositories: RepositoryDto[] }) {
  const o = state.options;
  const r = o.retention;
  const cron = toCron(state.schedule);
  const containers = state.sources.filter(isContainerSource);
  const vms = state.sources.filter((s) => !isContainerSource(s));
  return (
    <div className="step-body">
      <label>
        Job name
        <input name="jobName" value={state.name} maxLength={100} required onChange={(e) => set({ name: e.target.value })} />
      </label>
      <label className="check-field">
        <input type="checkbox" checked={state.enabled} onChange={(e) => set({ enabled: e.target.checked })} />
        <span>
          Enabled <span className="muted small block">A disabled job keeps its settings but its schedule does not start it.</span>
        </span>
      </label>
      <dl className="summary" aria-label="Summary">
        <dt>Sources</dt>
        <dd data-testid="review-sources">
          {vms.length > 0 && <div>VMs: {vms.map((s) => s.name).join(', ')}</div>}
          <DisksLeftOut vcenterId={state.vcenterId} sources={vms} />
          {containers.map((c) => (
            <div key={c.moref}>
              {c.kind === 'tag' ? `Tag ${c.path}: the VMs tagged at each run, VMs tagged later included` : `${c.kind[0]!.toUpperCase() + c.kind.slice(1)} ${c.path}: its VMs at each run, VMs added later included`}
              {c.exclude?.length ? <span className="muted"> (except {c.exclude.map((x) => x.name).join(', ')})</span> : null}
            </div>
          ))}
          <span className="muted">on {vcenters.find((v) => v.id === state.vcenterId)?.name}</span>
        </dd>
        <dt>Repository</dt>
        <dd>{repositories.find((x) => x.id === state.repositoryId)?.name}</dd>
        <dt>Schedule</dt>
        <dd>
          {describeSchedule(cron)} {cron && <code>{cron}</code>}
        </dd>
        <dt>Transport</dt>
        <dd>
          {state.transportMode === 'automatic' ? 'Automatic (Direct SAN → HotAdd → network, per disk)' : `${TRANSPORT_LABEL[state.transportMode]} only`}
          {state.transportMode !== 'automatic' && state.transportMode !== 'nbd' && state.transportMode !== 'nbdssl' && (o.failoverToNetwork ? ', failing over to the network' : ', no failover')}
        </dd>
        <dt>Quiescing</dt>
        <dd>{o.quiesce}</dd>
        <dt>CBT</dt>
        <dd>
          {o.enableCbt ? 'enabled where off' : 'left as it is'}; sanity check {Math.round(o.cbtSanityRate * 100_000) / 1000}%
        </dd>
        <dt>Backup window</dt>
        <dd data-testid="review-window">
          {o.window ? `${o.window.start}–${o.window.end} (appliance time zone): scheduled runs start only inside it; VMs not started when it closes wait for the next run` : 'none: scheduled runs start at any time'}
        </dd>
        <dt>Retries</dt>
        <dd data-testid="review-retries">
          {o.retries.count === 0 ? 'off' : `failed VMs retried ${o.retries.count === 1 ? 'once' : `${o.retries.count} times`}, ${o.retries.delayMinutes} minute${o.retries.delayMinutes === 1 ? '' : 's'} apart`}
        </dd>
        <dt>Retention</dt>
        <dd>
          last {r.keepLast}, daily {r.keepDaily}, weekly {r.keepWeekly}, monthly {r.keepMonthly}, yearly {r.keepYearly}; immutable {r.immutableDays} day{r.immutableDays === 1 ? '' : 's'}
        </dd>
      </dl>
    </div>
  );
}
