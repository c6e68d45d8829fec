import { Link } from 'react-router';
import type { RestorePointDetail } from '@vaultline/contracts';
import { paths } from '../../config/paths.ts';
import { WHAT, type RestoreState, type RestoreWhat } from './state.ts';

/** Step 2: what to restore. Whole-VM choices need the hardware the restore point recorded; single files are browsed instead. */
export function WhatStep({ state, point, choose }: { state: RestoreState; point: RestorePointDetail; choose: (w: RestoreWhat) => void }) {
  return (
    <>
      <fieldset className="step-body choices">
        <legend>What to restore</legend>
        {WHAT.map((w) => {
          const unavailable = w.needsHardware && point.hardware === null;
          return (
            <label key={w.value} className={`choice ${state.what === w.value ? 'chosen' : ''} ${unavailable ? 'unavailable' : ''}`}>
              <input type="radio" name="what" value={w.value} checked={state.what === w.value} disabled={unavailable} onChange={() => choose(w.value)} />
              <span className="choice-text">
                <strong>{w.label}</strong>
                <span className="muted small block">{w.help}</span>
                {unavailable && <span className="small block reason">This restore point holds no hardware description (taken before Vaultline recorded it).</span>}
              </span>
            </label>
          );
        })}
      </fieldset>
      <div className="aside-action" data-testid="browse-files-offer">
        <span className="choice-text">
          <strong>Only some files or folders?</strong>
          <span className="muted small block">Browse this restore point’s disks, mounted read-only, and download files or folders (as .tar) without restoring anything.</span>
        </span>
        <Link className="button" to={paths.browseFiles(point.id)}>
          Browse files
        </Link>
      </div>
      {point.hardware !== null && (
        <div className="aside-action" data-testid="instant-recovery-offer">
          <span className="choice-text">
            <strong>Needed running now?</strong>
            <span className="muted small block">Instant recovery starts the VM on an ESXi host straight from this restore point in seconds, whatever its size; move it to production storage later while it runs.</span>
          </span>
          <Link className="button" to={paths.newInstantRecovery(point.id)}>
            Instant recovery
          </Link>
        </div>
      )}
    </>
  );
}
