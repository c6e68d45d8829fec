import { RESTORE_TRANSPORT_HELP, SAN_NEVER_WRITES, TRANSPORT_LABEL, WRITE_TRANSPORTS } from '../../components/run/transport.ts';
import type { RestoreState } from './state.ts';

/** How the disks are written: automatic, HotAdd or the network; never Direct SAN, and why. */
export function TransportChoice({ state, set }: { state: RestoreState; set: (p: Partial<RestoreState>) => void }) {
  return (
    <fieldset className="choices">
      <legend>How the disks are written</legend>
      {WRITE_TRANSPORTS.map((m) => (
        <label key={m} className={`choice ${state.transport === m ? 'chosen' : ''}`}>
          <input type="radio" name="restoreTransport" value={m} checked={state.transport === m} onChange={() => set({ transport: m })} />
          <span className="choice-text">
            <strong>{m === 'automatic' ? 'Automatic (recommended)' : TRANSPORT_LABEL[m]}</strong>
            <span className="muted small block">{RESTORE_TRANSPORT_HELP[m]}</span>
          </span>
        </label>
      ))}
      <p className="small muted" data-testid="san-note">
        {SAN_NEVER_WRITES}
      </p>
      {state.transport === 'hotadd' && (
        <label className="check-field">
          <input type="checkbox" checked={state.failoverToNetwork} onChange={(e) => set({ failoverToNetwork: e.target.checked })} />
          <span>
            Fail over to the network
            <span className="muted small block">If HotAdd fails on a disk, that disk is written over the network instead of failing the restore.</span>
          </span>
        </label>
      )}
    </fieldset>
  );
}
