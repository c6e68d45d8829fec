import type { JobOptions, TransportMode } from '@vaultline/contracts';
import { TRANSPORT_HELP, TRANSPORT_LABEL } from '../../../components/run/transport.ts';
import { NumberField, RetentionFields } from '../../../components/RetentionFields.tsx';
import type { WizardState } from './state.ts';

/** A night window, offered when the box is ticked; the operator sets the hours. */
const DEFAULT_WINDOW = { start: '20:00', end: '06:00' };

const MODES: TransportMode[] = ['automatic', 'san', 'hotadd', 'nbdssl', 'nbd'];

const QUIESCE: { value: JobOptions['quiesce']; label: string; help: string }[] = [
  { value: 'try', label: 'Try', help: 'Ask VMware Tools to quiesce the guest; if it cannot, take a crash-consistent snapshot and say so in the run.' },
  { value: 'require', label: 'Require', help: 'Fail the VM when the guest cannot be quiesced.' },
  { value: 'off', label: 'Off', help: 'Crash-consistent snapshots only (like pulling the plug).' },
];

export function OptionsStep({ state, set }: { state: WizardState; set: (patch: Partial<WizardState>) => void }) {
  const o = state.options;
  const setOptions = (patch: Partial<JobOptions>) => set({ options: { ...o, ...patch } });
  const setRetention = (patch: Partial<JobOptions['retention']>) => setOptions({ retention: { ...o.retention, ...patch } });
  const manual = state.transportMode !== 'automatic';
  const network = state.transportMode === 'nbd' || state.transportMode === 'nbdssl';
  return (
    <div className="step-body options">
      <fieldset className="choices">
        <legend>Transport mode</legend>
        {MODES.map((m) => (
          <label key={m} className={`choice ${state.transportMode === m ? 'chosen' : ''}`}>
            <input type="radio" name="transportMode" value={m} checked={state.transportMode === m} onChange={() => set({ transportMode: m })} />
            <span className="choice-text">
              <strong>{m === 'automatic' ? 'Automatic (recommended)' : `${TRANSPORT_LABEL[m]} only`}</strong>
              <span className="muted small block">{TRANSPORT_HELP[m]}</span>
            </span>
          </label>
        ))}
        <p className="small muted">
          {manual
            ? `Manual: every disk uses ${TRANSPORT_LABEL[state.transportMode]}. A disk it cannot serve at all fails its VM before any snapshot is taken, with the reason.`
            : 'Every run shows, per disk, the mode used and why each faster one was skipped. A disk whose Direct SAN or HotAdd read fails after the snapshot continues over the network from where it stopped, and the run ends with a warning.'}
        </p>
        <label className="check-field">
          <input type="checkbox" checked={o.failoverToNetwork} disabled={!manual || network} onChange={(e) => setOptions({ failoverToNetwork: e.target.checked })} />
          <span>
            Fail over to the network
            <span className="muted small block">
              {manual && !network
                ? `If ${TRANSPORT_LABEL[state.transportMode]} fails while attaching or reading a disk, that disk continues over the network (NBDSSL) instead of failing.`
                : 'Only for manual Direct SAN or HotAdd (automatic already falls back; network modes have nothing to fall back to).'}
            </span>
          </span>
        </label>
      </fieldset>

      <fieldset className="choices">
        <legend>Guest quiescing</legend>
        {QUIESCE.map((q) => (
          <label key={q.value} className={`choice ${o.quiesce === q.value ? 'chosen' : ''}`}>
            <input type="radio" name="quiesce" value={q.value} checked={o.quiesce === q.value} onChange={() => setOptions({ quiesce: q.value })} />
            <span className="choice-text">
              <strong>{q.label}</strong> <span className="muted small block">{q.help}</span>
            </span>
          </label>
        ))}
      </fieldset>

      <fieldset>
        <legend>Changed Block Tracking</legend>
        <label className="check-field">
          <input type="checkbox" checked={o.enableCbt} onChange={(e) => setOptions({ enableCbt: e.target.checked })} />
          <span>
            Enable CBT on VMs that have it off
            <span className="muted small block">Later backups then read only what changed. Without it, every backup reads whole disks (storage still deduplicates).</span>
          </span>
        </label>
        <NumberField
          label="CBT sanity check"
          value={Math.round(o.cbtSanityRate * 100_000) / 1000}
          min={0}
          max={100}
          step={0.1}
          suffix="% of unchanged areas re-read"
          help="Catches silent CBT errors: a mismatch marks the restore point suspect and the next backup re-reads every disk. 0 turns it off."
          onChange={(n) => setOptions({ cbtSanityRate: n / 100 })}
        />
      </fieldset>

      <fieldset>
        <legend>Backup window</legend>
        <label className="check-field">
          <input type="checkbox" checked={o.window !== null} onChange={(e) => setOptions({ window: e.target.checked ? DEFAULT_WINDOW : null })} />
          <span>
            Start scheduled runs only inside a backup window
            <span className="muted small block">
              In the appliance’s time zone; an end before the start spans midnight. A scheduled run due outside it is skipped, and the job’s runs say so. When it closes, VMs
              not started yet are left for the next run; VMs being copied finish. Run now is not restricted.
            </span>
          </span>
        </label>
        {o.window && (
          <div className="nested row-inline">
            <label className="inline">
              from
              <input type="time" value={o.window.start} required onChange={(e) => setOptions({ window: { start: e.target.value, end: o.window!.end } })} aria-label="Backup window from" />
            </label>
            <label className="inline">
              to
              <input type="time" value={o.window.end} required onChange={(e) => setOptions({ window: { start: o.window!.start, end: e.target.value } })} aria-label="Backup window to" />
            </label>
          </div>
        )}
      </fieldset>

      <fieldset>
        <legend>Automatic retries</legend>
        <div className="row-inline">
          <label className="inline">
            Retry failed VMs automatically:
            <input type="number" value={Number.isFinite(o.retries.count) ? o.retries.count : ''} min={0} max={5} required onChange={(e) => setOptions({ retries: { ...o.retries, count: e.target.valueAsNumber } })} aria-label="Retry failed VMs automatically" />
            times,
          </label>
          <label className="inline">
            <input
              type="number"
              value={Number.isFinite(o.retries.delayMinutes) ? o.retries.delayMinutes : ''}
              min={1}
              max={1440}
              required
              onChange={(e) => setOptions({ retries: { ...o.retries, delayMinutes: e.target.valueAsNumber } })}
              aria-label="Minutes between retries"
            />
            minutes apart
          </label>
        </div>
        <p className="small muted">When a run ends with failed VMs, a run of only those VMs starts that many minutes later, up to that many times (0 = off). Cancelled VMs are not retried.</p>
      </fieldset>

      <fieldset>
        <legend>Retention</legend>
        <RetentionFields value={o.retention} onChange={setRetention} />
        <p className="small muted">
          A restore point is kept while any rule keeps it. Vaultline refuses to delete an immutable restore point for that many days, whoever asks; on an S3
          bucket with Object Lock or a hardened local repository the storage itself refuses too (elsewhere root on the storage still can). The rules apply after every successful backup, to this job's restore points only; the run log names what was removed.
        </p>
      </fieldset>
    </div>
  );
}
